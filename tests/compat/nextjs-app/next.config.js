// `output: "standalone"` leaves .next/standalone/server.js, which bext's
// nextjs runtime runs. The build is committed (tests need no network) and
// .ci/run rebuilds it to compare, so it is made as reproducible as Next
// allows: a fixed build id, and Turbopack (`next build --turbopack`), whose
// output does not depend on the folder it is built in. The app shows no
// images: sharp and its libvips binaries (17 MB) are left out of the trace.
module.exports = {
  output: 'standalone',
  generateBuildId: () => 'bext-compat',
  images: { unoptimized: true },
  outputFileTracingExcludes: { '*': ['node_modules/sharp/**', 'node_modules/@img/**'] },
};
