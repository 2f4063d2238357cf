// The fetch-heavy handler of the JS benchmark: one outbound call per
// request to the upstream in env.UPSTREAM, its body answered as text.
// The same module runs in bext, under Bun.serve and under node:http.
export default {
  async fetch(request, env) {
    const upstream = await fetch(env.UPSTREAM);
    if (!upstream.ok) return new Response(`upstream answered ${upstream.status}`, { status: 502 });
    return new Response(await upstream.text(), { headers: { 'content-type': 'text/plain;charset=UTF-8' } });
  },
};
