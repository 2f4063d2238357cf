// A white-label SaaS API on Hono, unmodified, served by bext.
//
// bext's vhosts plugin maps `*.saas.test` to this app and passes the
// subdomain as the `x-vhost-tenant` header; the app reads it like any
// other header. Notes live in the KV namespace `NOTES`
// (`[apps.saas] kv = ["NOTES"]`), not in module state: each of the app's
// isolates has its own module state, so a note kept in a Map would be seen
// only by the isolate that stored it.
import { Hono } from 'hono';

const app = new Hono();

// Module state: one per isolate. Sent as `x-isolate` to show which one answered.
const ISOLATE = crypto.randomUUID();

// Middleware: every request gets the tenant, and every answer says how
// long the app took and who served it.
app.use('*', async (c, next) => {
  const started = performance.now();
  c.set('tenant', c.req.header('x-vhost-tenant') ?? 'public');
  await next();
  c.header('x-tenant', c.get('tenant'));
  c.header('x-app-time', `${(performance.now() - started).toFixed(2)}ms`);
  c.header('x-isolate', ISOLATE);
});

// A tenant's notes are the keys `<tenant>/<id>` of NOTES.
async function notesOf(kv, tenant) {
  const found = [];
  let cursor;
  do {
    const page = await kv.list({ prefix: `${tenant}/`, cursor });
    found.push(...page.keys.map((k) => k.name));
    cursor = page.list_complete ? undefined : page.cursor;
  } while (cursor);
  const notes = await Promise.all(found.map((key) => kv.get(key, 'json')));
  return notes.filter(Boolean).sort((a, b) => a.created - b.created || (a.id < b.id ? -1 : 1));
}

app.get('/', (c) => c.text(`Welcome, ${c.get('tenant')}!`));

app.get('/api/whoami', (c) =>
  c.json({
    tenant: c.get('tenant'),
    base: c.req.header('x-base') ?? '',
    path: c.req.path,
    query: c.req.query(),
  }),
);

app.get('/api/notes', async (c) => c.json(await notesOf(c.env.NOTES, c.get('tenant'))));

app.post('/api/notes', async (c) => {
  const body = await c.req.json().catch(() => null);
  if (!body || typeof body.text !== 'string' || body.text.length === 0) {
    return c.json({ error: 'text is required' }, 400);
  }
  const note = { id: crypto.randomUUID(), text: body.text, created: Date.now() };
  await c.env.NOTES.put(`${c.get('tenant')}/${note.id}`, JSON.stringify(note));
  return c.json(note, 201);
});

app.get('/api/notes/:id', async (c) => {
  const note = await c.env.NOTES.get(`${c.get('tenant')}/${c.req.param('id')}`, 'json');
  return note ? c.json(note) : c.json({ error: 'not found' }, 404);
});

app.get('/redirect', (c) => c.redirect('/api/whoami', 302));

app.notFound((c) => c.json({ error: 'no route', path: c.req.path }, 404));

app.onError((err, c) => c.json({ error: err.message }, 500));

export default app;
