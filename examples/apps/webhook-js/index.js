// A webhook relay: checks the sender's signature (`x-signature:
// sha256=<hex>`, HMAC-SHA256 of the raw body with env.SECRET), then
// forwards the event to env.FORWARD_TO with fetch(), which the app's
// `isolate.fetch.allow` must list with its port (`localhost:8081`). See
// docs/js-apps.md, "Outbound fetch".
const enc = new TextEncoder();
let key; // one import per isolate
const hmacKey = (secret) =>
  (key ??= crypto.subtle.importKey('raw', enc.encode(secret), { name: 'HMAC', hash: 'SHA-256' }, false, ['verify']));
const fromHex = (hex) => Uint8Array.from(hex.match(/../g) ?? [], (b) => parseInt(b, 16));

export default {
  async fetch(request, env) {
    if (request.method !== 'POST') return new Response('POST an event\n', { status: 405 });
    const body = await request.arrayBuffer();
    const sig = (request.headers.get('x-signature') ?? '').replace(/^sha256=/, '');
    const valid = /^[0-9a-f]{64}$/.test(sig) && (await crypto.subtle.verify('HMAC', await hmacKey(env.SECRET), fromHex(sig), body));
    if (!valid) return new Response('bad signature\n', { status: 401 });
    const upstream = await fetch(env.FORWARD_TO, {
      method: 'POST',
      headers: { 'content-type': request.headers.get('content-type') ?? 'application/octet-stream' },
      body,
      signal: AbortSignal.timeout(5000),
    });
    return new Response(`forwarded: ${upstream.status}\n`, { status: upstream.ok ? 202 : 502 });
  },
};
