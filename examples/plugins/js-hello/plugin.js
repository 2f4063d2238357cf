// An example bext plugin in JavaScript.
//
// - answers GET /js-hello itself with JSON (greeting, app, tenant),
// - refuses requests carrying `x-block: yes` with 403,
// - tells the app it was here (`x-js-hello` request header),
// - adds `x-js-hello` to every response,
// - reads `greeting` from its manifest's `config`.

let greeting = 'hello';

export function onInit(config) {
  if (config && typeof config.greeting === 'string') greeting = config.greeting;
}

export function onRequest(request, ctx) {
  const url = new URL(request.url);
  if (request.method === 'GET' && url.pathname === '/js-hello') {
    return Response.json({ greeting, app: ctx.app, tenant: ctx.tenant });
  }
  if (request.headers.get('x-block') === 'yes') {
    return new Response('blocked by js-hello\n', { status: 403 });
  }
  request.headers.set('x-js-hello', greeting);
}

export function onResponse(response) {
  response.headers.set('x-js-hello', greeting);
}
