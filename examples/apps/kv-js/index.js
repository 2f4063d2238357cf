// Bindings in `env` (docs/js-apps.md, "Bindings"): a visit counter and
// sessions in the KV namespace SESSIONS, a page kept in caches.default,
// and a secret read from bext's environment.
export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    switch (url.pathname) {
      case '/visits': {
        // Read-modify-write: fine for a demo; KV has no atomic increment.
        const n = Number((await env.SESSIONS.get('visits')) ?? 0) + 1;
        await env.SESSIONS.put('visits', String(n));
        return new Response(`visit ${n}\n`);
      }
      case '/login': {
        const id = crypto.randomUUID();
        const user = url.searchParams.get('user') ?? 'anonymous';
        await env.SESSIONS.put(`session:${id}`, JSON.stringify({ user }), {
          expirationTtl: 3600,
          metadata: { user },
        });
        return Response.json({ session: id });
      }
      case '/sessions': {
        const { keys } = await env.SESSIONS.list({ prefix: 'session:' });
        return Response.json(keys.map((k) => ({ id: k.name.slice(8), user: k.metadata.user, expires: k.expiration })));
      }
      case '/slow-page': {
        const hit = await caches.default.match(request);
        if (hit) return hit;
        const page = new Response(`rendered at ${new Date().toISOString()}\n`, {
          headers: { 'cache-control': 'max-age=60' },
        });
        await caches.default.put(request, page.clone());
        return page;
      }
      case '/key-check':
        // Say whether the secret is there, never what it is.
        return new Response(env.STRIPE_KEY ? 'stripe key loaded\n' : 'no stripe key\n');
      default:
        return new Response('try /visits, /login?user=ada, /sessions, /slow-page, /key-check\n', { status: 404 });
    }
  },
};
