// The small Web APIs test app (tests/e2e/js_web_apis.rs): each route
// exercises one API and answers what it saw, as JSON.
const json = (v) => Response.json(v);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const nameOf = (f) => { try { f(); return 'no error'; } catch (e) { return e.name; } };

const routes = {
  '/structured-clone'() {
    const inner = { n: 1 };
    const orig = { d: new Date(86400000), m: new Map([['k', inner]]), s: new Set([1, 2]), re: /a+b/gi, u8: new Uint8Array([1, 2, 3]), inner, list: [inner] };
    orig.self = orig;
    const copy = structuredClone(orig);
    return json({
      distinct: copy !== orig && copy.inner !== inner && copy.u8 !== orig.u8,
      cycle: copy.self === copy,
      shared: copy.m.get('k') === copy.inner && copy.list[0] === copy.inner,
      date: copy.d instanceof Date && copy.d.getTime() === 86400000,
      regexp: `${copy.re.source}/${copy.re.flags}`,
      set: [...copy.s],
      bytes: [...copy.u8],
      view: (() => {
        // A view keeps its offset and length in a copy of its whole
        // buffer; two views of one buffer still share one.
        const buf = new Uint8Array([0, 1, 2, 3, 4, 5, 6, 7]).buffer;
        const pair = structuredClone({ a: new Uint16Array(buf, 2, 2), b: new DataView(buf, 3, 2), c: new Uint8Array(buf, 6) });
        pair.c[0] = 99;
        return {
          offset: pair.a.byteOffset, length: pair.a.length, buffer: pair.a.buffer.byteLength, values: [...new Uint8Array(pair.a.buffer, 2, 4)],
          dataview: [pair.b.byteOffset, pair.b.byteLength, pair.b.getUint8(0)], shared: pair.a.buffer === pair.b.buffer && pair.b.buffer === pair.c.buffer,
          written: new Uint8Array(pair.a.buffer)[6], original: new Uint8Array(buf)[6],
        };
      })(),
      function: nameOf(() => structuredClone({ f() {} })),
      symbol: nameOf(() => structuredClone(Symbol('x'))),
    });
  },
  '/urlpattern'() {
    const books = new URLPattern({ pathname: '/books/:id(\\d+)' });
    const api = new URLPattern('/api/:version/*', 'https://shop.test');
    const host = new URLPattern({ hostname: '{:tenant.}?shop.test', pathname: '/*' });
    const loose = new URLPattern({ pathname: '/About' }, { ignoreCase: true });
    const m = api.exec('https://shop.test/api/v2/orders/7?x=1');
    return json({
      id: books.exec('https://any.test/books/42').pathname.groups.id,
      digits_only: books.test('https://any.test/books/abc'),
      api: m && m.pathname.groups,
      api_other_host: api.test('https://evil.test/api/v2/x'),
      api_inputs: m && m.inputs,
      tenant: host.exec('https://acme.shop.test/x').hostname.groups.tenant,
      bare: host.exec('https://shop.test/x').hostname.groups.tenant ?? null,
      ignore_case: loose.test({ pathname: '/about' }),
      case_sensitive: new URLPattern({ pathname: '/About' }).test({ pathname: '/about' }),
      dot_segments: books.test('https://any.test/books/x/../42'),
      not_a_url: books.exec('not a url'),
      pathname: books.pathname,
      has_regexp_groups: [books.hasRegExpGroups, api.hasRegExpGroups],
      bad_pattern: nameOf(() => new URLPattern({ pathname: '/books/:id(' })),
      init_with_base: nameOf(() => new URLPattern({ pathname: '/x' }, 'https://shop.test')),
    });
  },
  '/response-json'(url) {
    if (url.searchParams.get('bad') === 'bigint') return Response.json({ n: 1n });
    if (url.searchParams.get('bad') === 'undefined') return Response.json(undefined);
    return Response.json({ ok: true, list: [1, 'two'] }, { status: 202, headers: { 'x-extra': 'yes' } });
  },
  async '/microtasks'() {
    const order = [];
    setTimeout(() => order.push('timeout'), 0);
    queueMicrotask(() => order.push('microtask 1'));
    Promise.resolve().then(() => order.push('promise'));
    queueMicrotask(() => order.push('microtask 2'));
    order.push('sync');
    await sleep(5);
    return json({ order, not_a_function: nameOf(() => queueMicrotask(42)) });
  },
  async '/performance'() {
    const a = performance.now();
    await sleep(20);
    const b = performance.now();
    return json({ number: typeof a === 'number', non_negative: a >= 0, advanced_by_the_wait: b - a >= 19.999, origin_near_now: Math.abs(performance.timeOrigin + b - Date.now()) < 1000 });
  },
  '/base64'() {
    const all = String.fromCharCode(...Array.from({ length: 256 }, (_, i) => i));
    return json({
      btoa: btoa('hello'),
      atob: atob(' aGVs\nbG8= '),
      unpadded: atob('YQ'),
      bytes_round_trip: atob(btoa(all)) === all,
      btoa_non_latin1: nameOf(() => btoa('\u0100')),
      atob_bad_length: nameOf(() => atob('a')),
      atob_bad_char: nameOf(() => atob('a*bc')),
      atob_inner_padding: nameOf(() => atob('a=bc')),
    });
  },
  async '/abort'() {
    const c = new AbortController();
    const seen = [];
    c.signal.addEventListener('abort', (e) => seen.push(`listener ${e.type}`));
    c.signal.onabort = () => seen.push('onabort');
    c.abort('why');
    c.abort('again');
    const timeout = AbortSignal.timeout(10);
    await new Promise((resolve) => timeout.addEventListener('abort', resolve));
    const any = AbortSignal.any([new AbortController().signal, AbortSignal.abort('first')]);
    return json({
      aborted: c.signal.aborted, reason: c.signal.reason, seen,
      default_reason: (() => { const d = new AbortController(); d.abort(); return d.signal.reason.name; })(),
      timeout: timeout.reason.name,
      any: [any.aborted, any.reason],
      throw_if_aborted: nameOf(() => AbortSignal.abort().throwIfAborted()),
    });
  },
  async '/timers'() {
    const order = [];
    let ticks = 0;
    await new Promise((resolve) => {
      const id = setInterval(() => { ticks++; if (ticks === 3) { clearInterval(id); resolve(); } }, 5);
    });
    const cancelled = setTimeout(() => order.push('cancelled'), 1);
    clearTimeout(cancelled);
    setTimeout((a, b) => order.push(`late ${a}${b}`), 20, 'x', 'y');
    setTimeout(() => order.push('early'), 5);
    await sleep(40);
    return json({ ticks, order });
  },
  '/console'() {
    console.log('console-marker log', { a: 1 });
    console.info('console-marker info');
    console.warn('console-marker warn');
    console.error('console-marker error', new Error('with a stack'));
    return new Response('logged');
  },
};

export default {
  async fetch(request) {
    const url = new URL(request.url);
    const route = routes[url.pathname];
    return route ? route(url) : new Response('no route', { status: 404 });
  },
};
