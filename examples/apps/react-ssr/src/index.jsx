// A React 19 page rendered on the server, unmodified, served by bext.
//
// `renderToReadableStream` sends the shell at once (with the Suspense
// fallback), then the slow part when its data arrives: bext passes the
// stream on chunk by chunk (chunked on HTTP/1.1, DATA frames on h2).
import { Suspense, use } from 'react';
import { renderToReadableStream } from 'react-dom/server';

// Data that takes a while (`?delay=ms`), as a database or an API would.
function slowData(ms) {
  return new Promise((resolve) => setTimeout(() => resolve(['espresso', 'flat white', 'cortado']), ms));
}

function Menu({ data }) {
  const items = use(data);
  return (
    <ul id="menu">
      {items.map((item) => (
        <li key={item}>{item}</li>
      ))}
    </ul>
  );
}

function Page({ tenant, data }) {
  return (
    <html lang="en">
      <head>
        <meta charSet="utf-8" />
        <title>{`Café ${tenant}`}</title>
      </head>
      <body>
        <h1>Welcome to café {tenant}</h1>
        <Suspense fallback={<p id="loading">Loading the menu…</p>}>
          <Menu data={data} />
        </Suspense>
      </body>
    </html>
  );
}

export default {
  async fetch(request) {
    const url = new URL(request.url);
    const tenant = request.headers.get('x-vhost-tenant') ?? 'bext';
    const delay = Math.min(Number(url.searchParams.get('delay') ?? 50) || 0, 5000);
    const stream = await renderToReadableStream(<Page tenant={tenant} data={slowData(delay)} />, {
      onError(error) {
        console.error('render failed', error);
      },
    });
    return new Response(stream, { headers: { 'content-type': 'text/html; charset=utf-8' } });
  },
};
