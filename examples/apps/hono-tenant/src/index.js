// A white-label SaaS API on Hono, unmodified, served by bext.
//
// bext's vhosts plugin maps `*.saas.test` to this app and passes the
// subdomain as the `x-vhost-tenant` header; the app reads it like any
// other header.
import { Hono } from 'hono';

const app = new Hono();

// Middleware: every request gets the tenant, and every answer says how
// long the app took and who served it.
app.use('*', async (c, next) => {
  const started = performance.now();
  c.set('tenant', c.req.header('x-vhost-tenant') ?? 'public');
  await next();
  c.header('x-tenant', c.get('tenant'));
  c.header('x-app-time', `${(performance.now() - started).toFixed(2)}ms`);
});

const notes = new Map(); // tenant -> [{ id, text }]

app.get('/', (c) => c.text(`Welcome, ${c.get('tenant')}!`));

app.get('/api/whoami', (c) =>
  c.json({
    tenant: c.get('tenant'),
    base: c.req.header('x-base') ?? '',
    path: c.req.path,
    query: c.req.query(),
  }),
);

app.get('/api/notes', (c) => c.json(notes.get(c.get('tenant')) ?? []));

app.post('/api/notes', async (c) => {
  const body = await c.req.json().catch(() => null);
  if (!body || typeof body.text !== 'string' || body.text.length === 0) {
    return c.json({ error: 'text is required' }, 400);
  }
  const list = notes.get(c.get('tenant')) ?? [];
  const note = { id: crypto.randomUUID(), text: body.text };
  list.push(note);
  notes.set(c.get('tenant'), list);
  return c.json(note, 201);
});

app.get('/api/notes/:id', (c) => {
  const note = (notes.get(c.get('tenant')) ?? []).find((n) => n.id === c.req.param('id'));
  return note ? c.json(note) : c.json({ error: 'not found' }, 404);
});

app.get('/redirect', (c) => c.redirect('/api/whoami', 302));

app.notFound((c) => c.json({ error: 'no route', path: c.req.path }, 404));

app.onError((err, c) => c.json({ error: err.message }, 500));

export default app;
