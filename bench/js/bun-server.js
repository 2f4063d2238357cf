// A Workers-shaped module under Bun.serve: the hello-world handler, or the
// module named by APP (a path), called as bext calls it: fetch(request,
// env, ctx), env from the process environment.
const { default: app } = await import(process.env.APP ?? './hello.js');
const ctx = { waitUntil() {}, passThroughOnException() {} };

Bun.serve({
  hostname: '127.0.0.1',
  port: Number(process.env.PORT),
  fetch: (request) => app.fetch(request, process.env, ctx),
});
