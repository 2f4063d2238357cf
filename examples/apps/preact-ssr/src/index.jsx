// A Preact page rendered on the server with preact-render-to-string,
// unmodified, served by bext: components, hooks and a JSON API.
import { render } from 'preact-render-to-string';
import { useState } from 'preact/hooks';

function Counter({ start }) {
  const [count] = useState(start);
  return <p id="count">Count: {count}</p>;
}

function Page({ tenant, items }) {
  return (
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <title>{`Shop ${tenant}`}</title>
      </head>
      <body>
        <h1>Shop {tenant}</h1>
        <Counter start={items.length} />
        <ul>
          {items.map((item) => (
            <li key={item}>{item}</li>
          ))}
        </ul>
      </body>
    </html>
  );
}

export default {
  fetch(request) {
    const url = new URL(request.url);
    const tenant = request.headers.get('x-vhost-tenant') ?? 'bext';
    const items = url.searchParams.getAll('item');
    if (url.pathname === '/api/items') return Response.json({ tenant, items });
    const html = '<!doctype html>' + render(<Page tenant={tenant} items={items} />);
    return new Response(html, { headers: { 'content-type': 'text/html; charset=utf-8' } });
  },
};
