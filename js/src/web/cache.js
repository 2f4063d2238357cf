// `caches.default`, a subset of the Cache API (match, put, delete), over
// the natives of js/src/bindings/cache.rs; answers come back through the
// prelude's pending map as a fetch's do. Defined only for apps.
(function (native) {
  'use strict';
  const pending = native.pending;

  function settle(id, what, map) {
    return new Promise((resolve, reject) => {
      pending.set(id, {
        op(error, value) {
          if (error !== null) reject(new Error(`${what} failed: ${error}`));
          else resolve(map(value));
        },
      });
    });
  }

  // The key: the request's URL, without its fragment; only GET is cached.
  function keyOf(request, options, what) {
    const req = request instanceof Request ? request : new Request(String(request));
    const ignoreMethod = options !== undefined && options !== null && options.ignoreMethod === true;
    if (req.method !== 'GET' && !ignoreMethod) return [null, req];
    const url = new URL(req.url);
    url.hash = '';
    return [url.href, req];
  }

  // Seconds the response may be kept: s-maxage, else max-age (-1: no
  // limit); null when it must not be stored.
  function lifetime(headers) {
    const cc = (headers.get('cache-control') || '').toLowerCase();
    if (/(^|[\s,])(no-store|private)($|[\s,=])/.test(cc)) return null;
    const s = /(^|[\s,])s-maxage\s*=\s*"?(\d+)/.exec(cc) || /(^|[\s,])max-age\s*=\s*"?(\d+)/.exec(cc);
    if (s) {
      const n = Number(s[2]);
      return n === 0 ? null : n;
    }
    return -1;
  }

  class Cache {
    async match(request, options) {
      const [url] = keyOf(request, options, 'Cache.match()');
      if (url === null) return undefined;
      return settle(native.cacheMatch(url), 'Cache.match()', (got) => {
        if (got === null) return undefined;
        const r = Response._from(got[0], got[1]);
        r._initBody(got[2].length === 0 && (got[0] === 204 || got[0] === 304) ? null : got[2]);
        return r;
      });
    }
    async put(request, response) {
      const what = 'Cache.put()';
      const [url, req] = keyOf(request, undefined, what);
      if (url === null) throw new TypeError(`${what}: only GET requests can be cached, not ${req.method}`);
      if (!(response instanceof Response)) throw new TypeError(`${what}: the second argument must be a Response`);
      if (response.status === 206) throw new TypeError(`${what}: a partial response (206) cannot be cached`);
      const vary = response.headers.get('vary');
      if (vary !== null && vary.split(',').some((v) => v.trim() === '*')) throw new TypeError(`${what}: a response with Vary: * cannot be cached`);
      if (response.bodyUsed) throw new TypeError(`${what}: the response body was already used`);
      const ttl = lifetime(response.headers);
      const body = new Uint8Array(await response.arrayBuffer());
      if (ttl === null) return undefined;
      return settle(native.cachePut(url, response.status, response.headers._toFlat(), body, ttl), what, () => undefined);
    }
    async delete(request, options) {
      const [url] = keyOf(request, options, 'Cache.delete()');
      if (url === null) return false;
      return settle(native.cacheDelete(url), 'Cache.delete()', (removed) => removed === true);
    }
    get [Symbol.toStringTag]() {
      return 'Cache';
    }
  }

  const caches = Object.freeze({ default: new Cache() });
  Object.defineProperty(globalThis, 'caches', { value: caches, writable: true, configurable: true, enumerable: false });
});
