// The JS plugin of the overhead benchmark: the same work as rust-hello
// on a request it does not answer (one request header, one response header).
export function onRequest(request) {
  request.headers.set('x-hello-seen', '1');
}

export function onResponse(response) {
  response.headers.set('x-hello', 'hi');
}
