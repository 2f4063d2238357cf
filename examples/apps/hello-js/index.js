// The smallest bext JavaScript app: the Workers/Bun `fetch` shape.
export default {
  fetch(request, env) {
    const url = new URL(request.url);
    if (url.pathname === '/json') {
      return Response.json({ hello: env.NAME ?? 'world', tenant: request.headers.get('x-vhost-tenant') });
    }
    return new Response(`Hello from ${env.NAME ?? 'bext'}!\n`);
  },
};
