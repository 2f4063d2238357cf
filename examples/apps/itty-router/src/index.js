// An itty-router API, unmodified, served by bext: an `AutoRouter` with
// route params, query, JSON bodies, a middleware and its error handling.
import { AutoRouter, error } from 'itty-router';

const withTenant = (request) => {
  request.tenant = request.headers.get('x-vhost-tenant') ?? 'public';
};

const router = AutoRouter({ before: [withTenant] });

router
  .get('/', ({ tenant }) => `hello ${tenant}`)
  .get('/api/items/:id', ({ params, query, tenant }) => ({ id: params.id, tenant, sort: query.sort ?? null }))
  .post('/api/items', async (request) => {
    const body = await request.json().catch(() => null);
    if (!body || typeof body.name !== 'string') return error(400, 'name is required');
    return new Response(JSON.stringify({ created: body.name, tenant: request.tenant }), {
      status: 201,
      headers: { 'content-type': 'application/json' },
    });
  })
  .get('/boom', () => {
    throw new Error('boom');
  });

export default router;
