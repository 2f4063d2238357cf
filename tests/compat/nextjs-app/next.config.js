// `output: "standalone"` leaves .next/standalone/server.js, which bext's
// nextjs runtime runs; telemetry off so the build needs no network.
module.exports = { output: 'standalone' };
