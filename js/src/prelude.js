// bext's Web API prelude, evaluated once in every isolate before user code.
//
// It is one function expression: the host calls it with the native helpers
// (`native`, implemented in Rust: UTF-8, URL parsing, form encoding,
// randomness, logging, a monotonic clock) and gets back the dispatcher the
// host uses to call into user code. Nothing here is reachable from user
// code except the standard globals it defines.
(function (native) {
  'use strict';
  const g = globalThis;
  const define = (name, value) =>
    Object.defineProperty(g, name, { value, writable: true, configurable: true, enumerable: false });

  // ---------------------------------------------------------------- errors
  class DOMException extends Error {
    constructor(message = '', name = 'Error') {
      super(message);
      this.name = name;
    }
  }
  define('DOMException', DOMException);

  // --------------------------------------------------------------- console
  function inspect(v, depth = 0) {
    if (typeof v === 'string') return depth ? JSON.stringify(v) : v;
    if (v instanceof Error) return v.stack ? `${v.name}: ${v.message}\n${v.stack}` : `${v.name}: ${v.message}`;
    if (typeof v === 'function') return `[Function ${v.name || 'anonymous'}]`;
    if (typeof v === 'bigint') return `${v}n`;
    if (typeof v === 'symbol' || v === undefined || v === null || typeof v !== 'object') return String(v);
    if (depth > 2) return Array.isArray(v) ? '[Array]' : '[Object]';
    if (Array.isArray(v)) return `[ ${v.map((x) => inspect(x, depth + 1)).join(', ')} ]`;
    if (v instanceof Map) return `Map(${v.size}) { ${[...v].map(([k, x]) => `${inspect(k, depth + 1)} => ${inspect(x, depth + 1)}`).join(', ')} }`;
    if (v instanceof Set) return `Set(${v.size}) { ${[...v].map((x) => inspect(x, depth + 1)).join(', ')} }`;
    if (typeof v.toJSON === 'function' || v instanceof URL) return inspect(v.toJSON ? v.toJSON() : String(v), depth + 1);
    const keys = Object.keys(v);
    const name = v.constructor && v.constructor !== Object ? `${v.constructor.name} ` : '';
    return `${name}{ ${keys.map((k) => `${k}: ${inspect(v[k], depth + 1)}`).join(', ')} }`;
  }
  const logAt = (level) => (...args) => native.log(level, args.map((a) => inspect(a)).join(' '));
  define('console', {
    trace: logAt(0), debug: logAt(1), log: logAt(2), info: logAt(2), warn: logAt(3), error: logAt(4),
  });

  // ---------------------------------------------------------------- timers
  // Timers run on the isolate's own loop: while a call waits on them, and
  // between calls when one is due.
  let timerSeq = 0;
  const timers = new Map();
  function addTimer(fn, ms, args, repeat) {
    if (typeof fn !== 'function') throw new TypeError('timer callback must be a function');
    const delay = Math.max(0, Number(ms) || 0);
    const id = ++timerSeq;
    timers.set(id, { at: native.now() + delay, fn, args, every: repeat ? Math.max(1, delay) : -1 });
    if (timers.size === 1) native.timersArmed(true);
    return id;
  }
  define('setTimeout', (fn, ms, ...args) => addTimer(fn, ms, args, false));
  define('setInterval', (fn, ms, ...args) => addTimer(fn, ms, args, true));
  const clear = (id) => {
    if (timers.delete(id) && timers.size === 0) native.timersArmed(false);
  };
  define('clearTimeout', clear);
  define('clearInterval', clear);
  define('queueMicrotask', (fn) => {
    if (typeof fn !== 'function') throw new TypeError('queueMicrotask: the callback must be a function');
    Promise.resolve().then(fn).catch(reportError);
  });
  function nextTimer() {
    let at = -1;
    for (const t of timers.values()) if (at < 0 || t.at < at) at = t.at;
    return at;
  }
  // Fires the one timer due first at or before `limit` (a `native.now()`
  // reading taken when the host's run began: timers a callback sets are
  // not due in the same run); returns whether one fired. The host calls it
  // once per callback so that each callback, with the microtasks it
  // queues, has its own CPU budget, and stops between callbacks once the
  // run has held the thread for long enough (the rest fire next run).
  function runTimer(limit) {
    let id = 0;
    let t = null;
    for (const [i, x] of timers) if (x.at <= limit && (t === null || x.at < t.at)) [id, t] = [i, x];
    if (t === null) return false;
    if (t.every >= 0) t.at = limit + t.every;
    else clear(id);
    try {
      t.fn(...t.args);
    } catch (e) {
      reportError(e);
    }
    return true;
  }
  function reportError(e) {
    native.log(4, `uncaught: ${inspect(e)}`);
  }
  define('reportError', reportError);
  const started = native.now();
  define('performance', { now: () => native.now() - started, timeOrigin: Date.now() - (native.now() - started) });

  // -------------------------------------------------------- structuredClone
  function cloneValue(v, seen) {
    if (typeof v === 'function' || typeof v === 'symbol') throw new DOMException(`${String(v)} could not be cloned`, 'DataCloneError');
    if (typeof v !== 'object' || v === null) return v;
    if (seen.has(v)) return seen.get(v);
    let out;
    if (v instanceof Date) out = new Date(v.getTime());
    else if (v instanceof RegExp) out = new RegExp(v.source, v.flags);
    else if (v instanceof ArrayBuffer) out = v.slice(0);
    // A view keeps its place in its buffer, and views of one buffer share
    // one copy of it (the buffer is cloned once, through `seen`).
    else if (v instanceof DataView) out = new DataView(cloneValue(v.buffer, seen), v.byteOffset, v.byteLength);
    else if (ArrayBuffer.isView(v)) out = new v.constructor(cloneValue(v.buffer, seen), v.byteOffset, v.length);
    else if (v instanceof Error) out = new v.constructor(v.message);
    else if (v instanceof Map) {
      out = new Map();
      seen.set(v, out);
      for (const [k, x] of v) out.set(cloneValue(k, seen), cloneValue(x, seen));
      return out;
    } else if (v instanceof Set) {
      out = new Set();
      seen.set(v, out);
      for (const x of v) out.add(cloneValue(x, seen));
      return out;
    } else {
      out = Array.isArray(v) ? [] : {};
      seen.set(v, out);
      for (const k of Object.keys(v)) out[k] = cloneValue(v[k], seen);
      return out;
    }
    seen.set(v, out);
    return out;
  }
  define('structuredClone', (v) => cloneValue(v, new Map()));

  // -------------------------------------------------------------- encoding
  function toBytes(x) {
    if (x instanceof Uint8Array) return x;
    if (x instanceof ArrayBuffer) return new Uint8Array(x);
    if (ArrayBuffer.isView(x)) return new Uint8Array(x.buffer, x.byteOffset, x.byteLength);
    throw new TypeError('expected an ArrayBuffer or a view of one');
  }
  class TextEncoder {
    get encoding() { return 'utf-8'; }
    encode(s = '') { return native.utf8Encode(String(s)); }
    encodeInto(s, dest) {
      const bytes = native.utf8Encode(String(s));
      let n = Math.min(bytes.length, dest.length);
      while (n > 0 && n < bytes.length && (bytes[n] & 0xc0) === 0x80) n--; // whole characters only
      dest.set(bytes.subarray(0, n));
      return { read: native.utf8Decode(bytes.subarray(0, n), false, true).length, written: n };
    }
  }
  class TextDecoder {
    constructor(label = 'utf-8', options = {}) {
      const l = String(label).trim().toLowerCase();
      if (l !== 'utf-8' && l !== 'utf8' && l !== 'unicode-1-1-utf-8') throw new RangeError(`unsupported encoding: ${label}`);
      this.fatal = !!options.fatal;
      this.ignoreBOM = !!options.ignoreBOM;
    }
    get encoding() { return 'utf-8'; }
    decode(input, _options) {
      if (input === undefined || input === null) return '';
      return native.utf8Decode(toBytes(input), this.fatal, this.ignoreBOM);
    }
  }
  define('TextEncoder', TextEncoder);
  define('TextDecoder', TextDecoder);

  const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
  const B64_INDEX = new Map([...B64].map((c, i) => [c, i]));
  define('btoa', (input) => {
    const s = String(input);
    let out = '';
    for (let i = 0; i < s.length; i += 3) {
      const a = s.charCodeAt(i), b = s.charCodeAt(i + 1), c = s.charCodeAt(i + 2);
      if (a > 255 || b > 255 || c > 255) throw new DOMException('btoa: characters outside Latin-1', 'InvalidCharacterError');
      const n = (a << 16) | ((b || 0) << 8) | (c || 0);
      out += B64[n >> 18] + B64[(n >> 12) & 63] + (i + 1 < s.length ? B64[(n >> 6) & 63] : '=') + (i + 2 < s.length ? B64[n & 63] : '=');
    }
    return out;
  });
  define('atob', (input) => {
    let s = String(input).replace(/[\t\n\f\r ]/g, '');
    if (s.length % 4 === 0) s = s.replace(/==?$/, '');
    if (s.length % 4 === 1 || /[^A-Za-z0-9+/]/.test(s)) throw new DOMException('atob: invalid base64', 'InvalidCharacterError');
    let out = '';
    let bits = 0, acc = 0;
    for (const ch of s) {
      acc = (acc << 6) | B64_INDEX.get(ch);
      bits += 6;
      if (bits >= 8) {
        bits -= 8;
        out += String.fromCharCode((acc >> bits) & 255);
      }
    }
    return out;
  });

  // ---------------------------------------------------------------- crypto
  // `crypto` and `crypto.subtle` are web/crypto.js, evaluated next.

  // ------------------------------------------------------------------- URL
  // Parsing and setters are the WHATWG algorithms of the `url` crate.
  const U = { href: 0, protocol: 1, username: 2, password: 3, host: 4, hostname: 5, port: 6, pathname: 7, search: 8, hash: 9, origin: 10 };
  class URLSearchParams {
    constructor(init = '') {
      this._list = [];
      this._url = null;
      if (init instanceof URLSearchParams) this._list = init._list.map((p) => p.slice());
      else if (typeof init === 'string') this._parse(init);
      else if (init && typeof init[Symbol.iterator] === 'function') {
        for (const pair of init) {
          const p = [...pair];
          if (p.length !== 2) throw new TypeError('URLSearchParams: each pair needs exactly two items');
          this._list.push([String(p[0]), String(p[1])]);
        }
      } else if (init && typeof init === 'object') {
        for (const k of Object.keys(init)) this._list.push([k, String(init[k])]);
      } else if (init !== undefined && init !== null) this._parse(String(init));
    }
    _parse(s) {
      const flat = native.formParse(s.startsWith('?') ? s.slice(1) : s);
      this._list = [];
      for (let i = 0; i < flat.length; i += 2) this._list.push([flat[i], flat[i + 1]]);
    }
    _changed() {
      if (this._url) this._url._setQuery(this.toString());
    }
    get size() { return this._list.length; }
    append(name, value) { this._list.push([String(name), String(value)]); this._changed(); }
    delete(name, value) {
      name = String(name);
      this._list = this._list.filter(([k, v]) => k !== name || (value !== undefined && v !== String(value)));
      this._changed();
    }
    get(name) {
      name = String(name);
      const p = this._list.find(([k]) => k === name);
      return p ? p[1] : null;
    }
    getAll(name) { name = String(name); return this._list.filter(([k]) => k === name).map(([, v]) => v); }
    has(name, value) {
      name = String(name);
      return this._list.some(([k, v]) => k === name && (value === undefined || v === String(value)));
    }
    set(name, value) {
      name = String(name);
      value = String(value);
      const i = this._list.findIndex(([k]) => k === name);
      if (i < 0) this._list.push([name, value]);
      else {
        this._list[i][1] = value;
        this._list = this._list.filter(([k], j) => j <= i || k !== name);
      }
      this._changed();
    }
    sort() {
      this._list = this._list.map((p, i) => [p, i]).sort((a, b) => (a[0][0] < b[0][0] ? -1 : a[0][0] > b[0][0] ? 1 : a[1] - b[1])).map(([p]) => p);
      this._changed();
    }
    forEach(fn, thisArg) { for (const [k, v] of this._list) fn.call(thisArg, v, k, this); }
    keys() { return this._list.map(([k]) => k)[Symbol.iterator](); }
    values() { return this._list.map(([, v]) => v)[Symbol.iterator](); }
    entries() { return this._list.map((p) => p.slice())[Symbol.iterator](); }
    [Symbol.iterator]() { return this.entries(); }
    toString() { return native.formSerialize(this._list.flat()); }
    get [Symbol.toStringTag]() { return 'URLSearchParams'; }
  }
  class URL {
    constructor(url, base) {
      const parts = native.urlParse(String(url), base === undefined ? undefined : String(base));
      if (parts === null) throw new TypeError(`Invalid URL: ${url}`);
      this._p = parts;
      this._sp = null;
    }
    static canParse(url, base) { return native.urlParse(String(url), base === undefined ? undefined : String(base)) !== null; }
    static parse(url, base) { try { return new URL(url, base); } catch { return null; } }
    _set(part, value) {
      const parts = native.urlSet(this._p[0], part, String(value));
      if (parts !== null) this._p = parts;
      if (this._sp && part === 'search') this._sp._parse(this._p[U.search]);
    }
    _setQuery(query) {
      this._p = native.urlSet(this._p[0], 'search', query) || this._p;
    }
    get searchParams() {
      if (!this._sp) {
        this._sp = new URLSearchParams(this._p[U.search]);
        this._sp._url = this;
      }
      return this._sp;
    }
    get origin() { return this._p[U.origin]; }
    toString() { return this._p[0]; }
    toJSON() { return this._p[0]; }
    get [Symbol.toStringTag]() { return 'URL'; }
  }
  for (const [name, i] of Object.entries(U)) {
    if (name === 'origin') continue;
    Object.defineProperty(URL.prototype, name, {
      get() { return this._p[i]; },
      set(v) { this._set(name, v); },
      configurable: true,
    });
  }
  define('URL', URL);
  define('URLSearchParams', URLSearchParams);

  // --------------------------------------------------------------- Headers
  const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
  // Validated, lower-cased names, so the usual few are checked once.
  const NAMES = new Map();
  function headerName(n) {
    if (typeof n !== 'string') n = String(n);
    let lower = NAMES.get(n);
    if (lower !== undefined) return lower;
    if (!TOKEN.test(n)) throw new TypeError(`Invalid header name: "${n}"`);
    lower = n.toLowerCase();
    if (NAMES.size < 512) NAMES.set(n, lower);
    return lower;
  }
  // One regex test on the common path: values with nothing to trim or refuse.
  const VALUE_NEEDS_WORK = /^[\t\n\r ]|[\t\n\r ]$|[\0\r\n]/;
  function headerValue(v) {
    v = typeof v === 'string' ? v : String(v);
    if (!VALUE_NEEDS_WORK.test(v)) return v;
    v = v.replace(/^[\t\n\r ]+|[\t\n\r ]+$/g, '');
    if (/[\0\r\n]/.test(v)) throw new TypeError('Invalid header value');
    return v;
  }
  // The host's packed headers ("name\nvalue\nname\nvalue": neither can
  // hold a line feed) as [name, value, ...].
  const unpack = (packed) => (packed === '' ? [] : packed.split('\n'));
  // Headers made from the host's (a plugin's request or response) log
  // their changes in `_ops` as [op, name, value] triples (0 set, 1 append,
  // 2 delete): the host applies the edits instead of copying every header
  // back.
  class Headers {
    constructor(init) {
      this._m = new Map();
      this._ops = null;
      if (init === undefined || init === null) return;
      if (init instanceof Headers) {
        for (const [k, l] of init._m) this._m.set(k, l.slice());
      } else if (typeof init[Symbol.iterator] === 'function') {
        for (const pair of init) {
          const p = [...pair];
          if (p.length !== 2) throw new TypeError('Headers: each pair needs exactly two items');
          this.append(p[0], p[1]);
        }
      } else if (typeof init === 'object') {
        for (const k of Object.keys(init)) this.append(k, init[k]);
      } else throw new TypeError('Headers: init must be an object, an iterable of pairs or Headers');
    }
    // `flat`: [name, value, ...], or the host's packed "name\nvalue\n..."
    // string (a request's headers, split only here, when first read).
    static _flat(flat) {
      if (typeof flat === 'string') flat = unpack(flat);
      const h = new Headers();
      const m = h._m;
      for (let i = 0; i < flat.length; i += 2) {
        const l = m.get(flat[i]);
        if (l) l.push(flat[i + 1]);
        else m.set(flat[i], [flat[i + 1]]);
      }
      h._ops = [];
      return h;
    }
    _toFlat() {
      // forEach, not for-of with destructuring: iterators are slow in QuickJS.
      const out = [];
      this._m.forEach((l, k) => {
        if (l.length === 1) out.push(k, l[0]);
        else for (let i = 0; i < l.length; i++) out.push(k, l[i]);
      });
      return out;
    }
    append(name, value) {
      name = headerName(name);
      value = headerValue(value);
      const l = this._m.get(name);
      if (l) l.push(value);
      else this._m.set(name, [value]);
      if (this._ops !== null) this._ops.push(1, name, value);
    }
    set(name, value) {
      name = headerName(name);
      value = headerValue(value);
      this._m.set(name, [value]);
      if (this._ops !== null) this._ops.push(0, name, value);
    }
    get(name) {
      const l = this._m.get(String(name).toLowerCase());
      return l === undefined ? null : l.length === 1 ? l[0] : l.join(', ');
    }
    getSetCookie() { return (this._m.get('set-cookie') || []).slice(); }
    has(name) { return this._m.has(String(name).toLowerCase()); }
    delete(name) {
      name = String(name).toLowerCase();
      this._m.delete(name);
      if (this._ops !== null) this._ops.push(2, name, '');
    }
    _sorted() {
      const out = [];
      for (const k of [...this._m.keys()].sort()) {
        const l = this._m.get(k);
        if (k === 'set-cookie') for (const v of l) out.push([k, v]);
        else out.push([k, l.length === 1 ? l[0] : l.join(', ')]);
      }
      return out;
    }
    forEach(fn, thisArg) { for (const [k, v] of this._sorted()) fn.call(thisArg, v, k, this); }
    entries() { return this._sorted()[Symbol.iterator](); }
    keys() { return this._sorted().map(([k]) => k)[Symbol.iterator](); }
    values() { return this._sorted().map(([, v]) => v)[Symbol.iterator](); }
    [Symbol.iterator]() { return this.entries(); }
    get [Symbol.toStringTag]() { return 'Headers'; }
  }
  define('Headers', Headers);

  // ---------------------------------------------------------------- streams
  // The Streams API (web/streams.js over a vendored polyfill) is loaded on
  // the first use of one of its globals, or of a body as a stream: an app
  // that never touches a stream does not pay for it.
  const STREAM_GLOBALS = ['ReadableStream', 'ReadableStreamDefaultReader', 'ReadableStreamBYOBReader',
    'ReadableStreamDefaultController', 'ReadableByteStreamController', 'ReadableStreamBYOBRequest',
    'WritableStream', 'WritableStreamDefaultWriter', 'WritableStreamDefaultController', 'TransformStream',
    'TransformStreamDefaultController', 'ByteLengthQueuingStrategy', 'CountQueuingStrategy',
    'TextEncoderStream', 'TextDecoderStream', 'CompressionStream', 'DecompressionStream'];
  // Globals whose classes are loaded on first use: reading one loads its
  // group, writing one (a polyfill of the app's own) replaces it.
  function lazyGlobals(names, load) {
    let api = null;
    const get = () => {
      if (api === null) {
        api = load();
        for (const name of names) define(name, api[name]);
      }
      return api;
    };
    for (const name of names) {
      Object.defineProperty(g, name, {
        get() { return get()[name]; },
        set(v) { get(); define(name, v); },
        configurable: true,
        enumerable: false,
      });
    }
    return { get, loaded: () => api };
  }
  const streamsApi = lazyGlobals(STREAM_GLOBALS, () => native.loadStreams());
  const streams = streamsApi.get;
  const formsApi = lazyGlobals(['Blob', 'File', 'FormData'], () => native.loadForms());
  const forms = formsApi.get;
  // Strings (most bodies) and null are no streams: no call to find out.
  const isStream = (x) =>
    typeof x === 'object' && x !== null && streamsApi.loaded() !== null && x instanceof streamsApi.loaded().ReadableStream;
  const formsLoaded = () => formsApi.loaded();
  function streamOf(bytes) {
    return new (streams().ReadableStream)({
      start(c) {
        if (bytes.length) c.enqueue(bytes);
        c.close();
      },
    });
  }
  function chunkBytes(value) {
    if (typeof value === 'string') return native.utf8Encode(value);
    if (value instanceof ArrayBuffer || ArrayBuffer.isView(value)) return toBytes(value);
    throw new TypeError('a body stream chunk must be a Uint8Array (or a string)');
  }
  async function collect(stream) {
    const parts = [];
    let total = 0;
    const reader = stream.getReader();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      const b = chunkBytes(value);
      parts.push(b);
      total += b.length;
    }
    if (parts.length === 1) return parts[0];
    const out = new Uint8Array(total);
    let at = 0;
    for (const p of parts) { out.set(p, at); at += p.length; }
    return out;
  }
  // How the host reads a streamed response body: `next()` gives the next
  // chunk's bytes, or null at the end.
  function pumpOf(stream) {
    const reader = stream.getReader();
    return {
      next: () => reader.read().then(({ value, done }) => (done ? null : chunkBytes(value))),
      cancel: (why) => reader.cancel(why).catch(() => {}),
    };
  }

  // ------------------------------------------------------ AbortController
  class AbortSignal {
    constructor() { this.aborted = false; this.reason = undefined; this.onabort = null; this._listeners = []; }
    addEventListener(type, fn) { if (type === 'abort' && typeof fn === 'function') this._listeners.push(fn); }
    removeEventListener(type, fn) { if (type === 'abort') this._listeners = this._listeners.filter((f) => f !== fn); }
    throwIfAborted() { if (this.aborted) throw this.reason; }
    _abort(reason) {
      if (this.aborted) return;
      this.aborted = true;
      this.reason = reason === undefined ? new DOMException('This operation was aborted', 'AbortError') : reason;
      const event = { type: 'abort', target: this };
      for (const fn of [...(this.onabort ? [this.onabort] : []), ...this._listeners]) {
        try { fn.call(this, event); } catch (e) { reportError(e); }
      }
      this._listeners = [];
    }
    static abort(reason) { const s = new AbortSignal(); s._abort(reason); return s; }
    static timeout(ms) {
      const s = new AbortSignal();
      setTimeout(() => s._abort(new DOMException('The operation timed out', 'TimeoutError')), ms);
      return s;
    }
    static any(signals) {
      const s = new AbortSignal();
      for (const x of signals) {
        if (x.aborted) { s._abort(x.reason); break; }
        x.addEventListener('abort', () => s._abort(x.reason));
      }
      return s;
    }
  }
  class AbortController {
    constructor() { this.signal = new AbortSignal(); }
    abort(reason) { this.signal._abort(reason); }
  }
  define('AbortSignal', AbortSignal);
  define('AbortController', AbortController);

  // ------------------------------------------------------- Request/Response
  // A body is null, a string, a Uint8Array, or a ReadableStream.
  function extractBody(body, headers) {
    if (body === undefined || body === null) return null;
    let type = null;
    let data;
    if (typeof body === 'string') { data = body; type = 'text/plain;charset=UTF-8'; }
    else if (body instanceof URLSearchParams) { data = body.toString(); type = 'application/x-www-form-urlencoded;charset=UTF-8'; }
    else if (formsLoaded() && body instanceof formsLoaded().FormData) [data, type] = forms().encodeMultipart(body);
    else if (formsLoaded() && body instanceof formsLoaded().Blob) { data = body._bytes.slice(); type = body.type || null; }
    else if (isStream(body)) {
      if (body.locked) throw new TypeError('the body stream is locked or was read');
      data = body;
    }
    else if (body instanceof ArrayBuffer || ArrayBuffer.isView(body)) data = toBytes(body).slice();
    else { data = String(body); type = 'text/plain;charset=UTF-8'; }
    if (type !== null && headers && !headers._m.has('content-type')) headers._m.set('content-type', [type]);
    return data;
  }
  class Body {
    _initBody(data) { this._data = data; this._used = false; this._stream = null; }
    get bodyUsed() { return this._used; }
    get body() {
      if (this._data === null) return null;
      if (!this._stream) {
        const d = this._data;
        this._stream = isStream(d) ? d : d instanceof HostBody ? d.stream() : streamOf(typeof d === 'string' ? native.utf8Encode(d) : d);
      }
      return this._stream;
    }
    async _consume() {
      if (this._used) throw new TypeError('Body has already been consumed');
      this._used = true;
      const d = this._stream || this._data;
      if (d === null) return '';
      if (isStream(d)) return collect(d);
      if (d instanceof HostBody) return d.bytes();
      return d;
    }
    async text() {
      const d = await this._consume();
      return typeof d === 'string' ? d : native.utf8Decode(d, false, false);
    }
    async json() { return JSON.parse(await this.text()); }
    async bytes() {
      const d = await this._consume();
      return typeof d === 'string' ? native.utf8Encode(d) : d.slice();
    }
    async arrayBuffer() { return (await this.bytes()).buffer; }
    async formData() {
      const type = this.headers.get('content-type') || '';
      const d = await this._consume();
      return forms().decodeForm(typeof d === 'string' ? native.utf8Encode(d) : d, type);
    }
    async blob() {
      return new (forms().Blob)([await this.bytes()], { type: this.headers.get('content-type') || '' });
    }
    _cloneData() {
      if (this._used) throw new TypeError('Body has already been consumed');
      const d = this._data instanceof HostBody ? this.body : this._stream || this._data;
      if (!isStream(d)) return d;
      // A streamed body is teed: this body reads one branch, the clone the other.
      const [mine, theirs] = d.tee();
      this._stream = mine;
      this._data = mine;
      return theirs;
    }
  }
  const METHODS = new Set(['DELETE', 'GET', 'HEAD', 'OPTIONS', 'POST', 'PUT', 'PATCH']);
  // Body's methods are copied onto Request and Response rather than
  // inherited: a `super()` call costs as much as the rest of a
  // constructor in QuickJS.
  const withBody = (cls) => {
    for (const name of Object.getOwnPropertyNames(Body.prototype)) {
      if (name !== 'constructor') Object.defineProperty(cls.prototype, name, Object.getOwnPropertyDescriptor(Body.prototype, name));
    }
    return cls;
  };
  class Request {
    constructor(input, init = {}) {
      let data = null;
      if (input instanceof Request) {
        this._url = input._url;
        this._method = input._method;
        this._headers = new Headers(input.headers);
        data = input._data === null ? null : input._cloneData();
      } else {
        this._url = new URL(String(input)).href;
        this._method = 'GET';
        this._headers = new Headers();
      }
      if (init.method !== undefined) {
        const m = String(init.method);
        this._method = METHODS.has(m.toUpperCase()) ? m.toUpperCase() : m;
      }
      if (init.headers !== undefined) this._headers = new Headers(init.headers);
      if (init.body !== undefined && init.body !== null) {
        if (this._method === 'GET' || this._method === 'HEAD') throw new TypeError('Request with GET/HEAD method cannot have body');
        data = extractBody(init.body, this._headers);
      }
      this._initBody(data);
      if (init.signal) this._signal = init.signal;
      else if (input instanceof Request && input._signal) this._signal = input._signal;
      if (init.redirect !== undefined) this._redirect = String(init.redirect);
      else if (input instanceof Request && input._redirect) this._redirect = input._redirect;
    }
    static _from(method, url, flat, body) {
      const r = Object.create(Request.prototype);
      r._url = url;
      r._method = method;
      r._headers = null;
      r._flat = flat; // Headers are built on first use (packed or flat).
      r._data = body;
      return r;
    }
    get url() { return this._url; }
    get method() { return this._method; }
    get headers() {
      if (this._headers === null) this._headers = Headers._flat(this._flat);
      return this._headers;
    }
    get signal() {
      if (!this._signal) this._signal = new AbortSignal();
      return this._signal;
    }
    get redirect() { return this._redirect || 'follow'; }
    get cache() { return 'default'; }
    get credentials() { return 'same-origin'; }
    get mode() { return 'cors'; }
    clone() { return new Request(this); }
    get [Symbol.toStringTag]() { return 'Request'; }
  }
  const NULL_BODY = new Set([101, 103, 204, 205, 304]);
  // Read-only: shared by every text Response whose headers were not asked for.
  const TEXT_HEADERS = Object.freeze(['content-type', 'text/plain;charset=UTF-8']);
  class Response {
    constructor(body = null, init = undefined) {
      // Few properties, set in one order (one shape); Headers only when
      // asked for: this is the hot path of every JS app.
      let status = 200;
      let headers;
      if (init !== undefined && init !== null) {
        if (init.status !== undefined) {
          status = Number(init.status);
          if (!Number.isInteger(status) || status < 200 || status > 599) throw new RangeError(`Invalid response status: ${init.status}`);
        }
        if (init.statusText !== undefined) this._statusText = String(init.statusText);
        headers = init.headers;
      }
      this._status = status;
      let data;
      if (typeof body === 'string' && headers === undefined) {
        this._headers = null;
        this._flat = TEXT_HEADERS;
        data = body;
      } else {
        const h = new Headers(headers);
        this._headers = h;
        if (typeof body === 'string') {
          data = body;
          if (!h._m.has('content-type')) h._m.set('content-type', ['text/plain;charset=UTF-8']);
        } else data = extractBody(body, h);
      }
      if (data !== null && NULL_BODY.has(status)) throw new TypeError(`Response with status ${status} cannot have a body`);
      this._data = data;
    }
    static _from(status, flat) {
      const r = Object.create(Response.prototype);
      r._status = status;
      r._headers = null;
      r._flat = flat; // Headers are built on first use (packed or flat).
      r._data = null;
      return r;
    }
    static json(data, init = {}) {
      const body = JSON.stringify(data);
      if (body === undefined) throw new TypeError('Response.json: value is not JSON-serialisable');
      const headers = new Headers(init.headers);
      if (!headers.has('content-type')) headers.set('content-type', 'application/json');
      return new Response(body, { status: init.status, statusText: init.statusText, headers });
    }
    static redirect(url, status = 302) {
      if (![301, 302, 303, 307, 308].includes(status)) throw new RangeError(`Invalid redirect status: ${status}`);
      return new Response(null, { status, headers: { location: new URL(String(url)).href } });
    }
    static error() {
      const r = new Response(null, { status: 200 });
      r._status = 0;
      r._type = 'error';
      return r;
    }
    get status() { return this._status; }
    get statusText() { return this._statusText || ''; }
    get ok() { return this._status >= 200 && this._status <= 299; }
    get headers() {
      if (this._headers === null) this._headers = Headers._flat(this._flat);
      return this._headers;
    }
    get type() { return this._type || 'default'; }
    get url() { return this._url || ''; }
    get redirected() { return this._redirected === true; }
    clone() {
      const r = new Response(null, { status: this._status === 0 ? 200 : this._status, statusText: this.statusText, headers: this.headers });
      r._status = this._status;
      r._initBody(this._cloneData());
      return r;
    }
    get [Symbol.toStringTag]() { return 'Response'; }
  }
  withBody(Request);
  withBody(Response);
  // QuickJS frees a shape (an object's hidden class) with the last object
  // that has it, so each request built the shapes of its Request and
  // Response again, one property at a time (a new shape, a rehash, a
  // resize each). One object at every step of the hot paths' chains,
  // kept for the isolate's life, keeps those shapes cached: the same
  // properties in the same order then find them.
  // Held by `native` (which the prelude's closures keep alive): a
  // variable no closure uses is freed when the prelude returns.
  const SHAPES = [];
  native.shapes = SHAPES;
  const keepShapes = (proto, names) => {
    for (let n = 0; n <= names.length; n++) {
      const o = Object.create(proto);
      for (let i = 0; i < n; i++) o[names[i]] = null;
      SHAPES.push(o);
    }
  };
  keepShapes(Request.prototype, ['_url', '_method', '_headers', '_flat', '_data']); // Request._from
  keepShapes(Response.prototype, ['_status', '_headers', '_flat', '_data']); // new Response(text)
  define('Request', Request);
  define('Response', Response);

  // ----------------------------------------------------------------- fetch
  // The request runs in Rust (bext's HTTP client, the app's allow list);
  // its answer comes back through `fetchDone`.
  const REDIRECT = { follow: 0, manual: 1, error: 2 };
  const fetches = new Map();
  // Bindings' operations (web/kv.js, web/cache.js) wait here too, as
  // `{ op(error, value) }`.
  native.pending = fetches;
  async function fetch(input, init) {
    const req = requestFor(input, init || {});
    const mode = init && init.redirect !== undefined ? String(init.redirect) : (input instanceof Request && input._redirect) || 'follow';
    const redirect = REDIRECT[mode];
    if (redirect === undefined) throw new TypeError(`fetch: invalid redirect mode ${mode}`);
    const signal = req._signal;
    if (signal) signal.throwIfAborted();
    // A stream body (`body: readableStream`, `request.body` passed on) is
    // sent as the connection asks for it, chunk by chunk; others whole.
    const source = req._data === null ? null : req._stream || req._data;
    let upload = null;
    let body = null;
    if (isStream(source)) {
      if (req._used || source.locked) throw new TypeError('fetch: the body stream is locked or was read');
      req._used = true;
      upload = source.getReader();
    } else if (source !== null) {
      body = await req.bytes();
    }
    if (signal) signal.throwIfAborted();
    let id;
    try {
      id = native.fetchStart(req.method, req.url, req.headers._toFlat(), body, redirect, upload !== null);
    } catch (e) {
      if (upload) upload.cancel(e).catch(() => {});
      throw e;
    }
    if (upload) uploads.set(id, upload);
    return new Promise((resolve, reject) => {
      const entry = { resolve, reject, signal, onAbort: null };
      if (signal) {
        entry.onAbort = () => {
          if (!fetches.delete(id)) return;
          native.fetchAbort(id);
          endUpload(id, signal.reason);
          reject(signal.reason);
        };
        signal.addEventListener('abort', entry.onAbort);
      }
      fetches.set(id, entry);
    });
  }
  define('fetch', fetch);
  // The Request a fetch sends. A Request whose body is a stream gives its
  // body to the fetch, as the spec says (it is then used), rather than
  // being teed: a tee would keep every chunk for the branch nobody reads.
  function requestFor(input, init) {
    const own = input instanceof Request && init.body === undefined;
    const body = own ? (input._data instanceof HostBody ? input.body : input._stream || input._data) : null;
    if (!isStream(body)) return new Request(input, init);
    if (input._used || body.locked) throw new TypeError('fetch: the body stream is locked or was read');
    const [data, stream] = [input._data, input._stream];
    input._data = null;
    input._stream = null;
    let req;
    try { req = new Request(input, init); } finally { input._data = data; input._stream = stream; }
    input._used = true;
    req._initBody(body);
    return req;
  }
  // Streamed response bodies of fetches: id -> { c: controller, owed }.
  const fetchBodies = new Map();
  // Streamed request bodies of fetches: id -> the stream's reader.
  const uploads = new Map();
  // An app's request body still arriving from the client (the handler
  // started before all of it was in). The host sends its chunks as it
  // does a streamed fetch body's (status -1 events of `fetchDone`, under
  // this id); they wait in `parts` until read, and bytes read are credited
  // back, so the host reads on from the client only as JavaScript reads
  // (backpressure). `text()` and the like collect it without loading the
  // Streams API; `request.body` is a stream over it.
  class HostBody {
    constructor(id) {
      this.id = id;
      this.parts = [];
      this.end = false;
      this.error = null;
      this.waiter = null;
      fetchBodies.set(id, this);
    }
    // A chunk (body), the end (neither) or why it failed (error).
    event(error, body) {
      if (error !== null) {
        fetchBodies.delete(this.id);
        this.error = new TypeError(`the request body could not be read: ${error}`);
      } else if (body === null) {
        fetchBodies.delete(this.id);
        this.end = true;
      } else this.parts.push(body);
      const w = this.waiter;
      this.waiter = null;
      if (w) w();
    }
    // The next chunk, or null at the end.
    async read() {
      while (this.parts.length === 0 && !this.end && this.error === null) {
        await new Promise((resolve) => { this.waiter = resolve; });
      }
      if (this.parts.length) {
        const b = this.parts.shift();
        native.fetchCredit(this.id, b.length);
        return b;
      }
      if (this.error !== null) throw this.error;
      return null;
    }
    cancel() {
      if (fetchBodies.delete(this.id)) native.fetchAbort(this.id);
      this.parts = [];
      this.end = true;
    }
    stream() {
      return new (streams().ReadableStream)({
        pull: (c) => this.read().then((b) => (b === null ? c.close() : c.enqueue(b))),
        cancel: () => this.cancel(),
      }, { highWaterMark: 0 });
    }
    async bytes() {
      const parts = [];
      let total = 0;
      for (let b; (b = await this.read()) !== null;) { parts.push(b); total += b.length; }
      if (parts.length === 1) return parts[0];
      const out = new Uint8Array(total);
      let at = 0;
      for (const p of parts) { out.set(p, at); at += p.length; }
      return out;
    }
  }
  // The connection asks for the next chunk: read it, then hand it over
  // (or the end, or why the stream failed).
  function pullUpload(id) {
    const reader = uploads.get(id);
    if (!reader) return;
    reader.read().then(({ value, done }) => {
      if (uploads.get(id) !== reader) return;
      if (done) {
        uploads.delete(id);
        native.fetchWrite(id, null, null);
      } else {
        native.fetchWrite(id, chunkBytes(value), null);
      }
    }).catch((e) => {
      if (uploads.get(id) !== reader) return;
      uploads.delete(id);
      native.fetchWrite(id, null, String((e && e.message) || e || 'the stream errored'));
      reader.cancel(e).catch(() => {});
    });
  }
  // The fetch is over (answered, failed, aborted): its stream is not read on.
  function endUpload(id, why) {
    const reader = uploads.get(id);
    if (!reader) return;
    uploads.delete(id);
    reader.cancel(why).catch(() => {});
  }
  // A fetch's head: (id, error) or (id, null, status, flat, body, url,
  // flags: 1 redirected, 2 streamed body); a streamed body's events have
  // status -1: a chunk (body), the end (neither) or a failure (error).
  function fetchDone(id, error, status, flat, body, url, flags) {
    const redirected = (flags & 1) === 1;
    const streamed = (flags & 2) === 2;
    const op = fetches.get(id);
    if (op && op.op) {
      // A binding's operation: its value may be any JavaScript value.
      fetches.delete(id);
      return op.op(error, status);
    }
    if (status === -2) {
      pullUpload(id);
      return;
    }
    if (status === -1) {
      if (error !== null || body === null) endUpload(id, error);
      const b = fetchBodies.get(id);
      if (!b) return;
      if (b instanceof HostBody) return b.event(error, body);
      if (error !== null) {
        fetchBodies.delete(id);
        b.c.error(new TypeError(`fetch failed: ${error}`));
      } else if (body === null) {
        fetchBodies.delete(id);
        b.c.close();
      } else {
        b.owed += body.length;
        b.c.enqueue(body);
      }
      return;
    }
    const f = fetches.get(id);
    if (!f) return;
    fetches.delete(id);
    if (f.signal) f.signal.removeEventListener('abort', f.onAbort);
    if (error !== null) {
      endUpload(id, error);
      f.reject(new TypeError(`fetch failed: ${error}`));
      return;
    }
    if (!streamed) endUpload(id, null);
    const r = Response._from(status, flat);
    let data = body;
    if (streamed) {
      // What arrived with the head first, the rest as the network gives
      // it; bytes read are credited back so the fetch reads on.
      const entry = { c: null, owed: 0 };
      fetchBodies.set(id, entry);
      const stop = () => { if (fetchBodies.delete(id)) native.fetchAbort(id); };
      data = new (streams().ReadableStream)({
        start(c) {
          entry.c = c;
          if (body.length) c.enqueue(body);
        },
        pull() {
          if (entry.owed) native.fetchCredit(id, entry.owed);
          entry.owed = 0;
        },
        cancel: stop,
      }, { highWaterMark: 0 });
      if (f.signal) f.signal.addEventListener('abort', () => { if (fetchBodies.has(id)) { entry.c.error(f.signal.reason); stop(); } });
    }
    r._initBody(NULL_BODY.has(status) ? null : data);
    r._url = url;
    r._redirected = redirected;
    f.resolve(r);
  }

  // ------------------------------------------------------------ dispatcher
  // Answers are plain arrays the host reads without further calls:
  //   response: [status, flatHeaders, body]   (body: string | Uint8Array | null)
  //   request hook: [0, headerEdits, app, tenant, vars] to go on, [1, ...response] to answer
  //   response hook: [0, headerEdits] to go on, [1, ...response] to replace
  const isThenable = (x) => x !== null && typeof x === 'object' && typeof x.then === 'function';
  const then = (x, f) => (isThenable(x) ? x.then(f) : f(x));

  function finish(res, what, streaming) {
    if (!(res instanceof Response)) {
      throw new TypeError(`${what} must return a Response, got ${res === null ? 'null' : typeof res}`);
    }
    const status = res._status === 0 ? 500 : res._status;
    const d = res._used ? null : res._stream || res._data;
    const flat = res._flat;
    const headers = res._headers !== null ? res._headers._toFlat() : typeof flat === 'string' ? unpack(flat) : flat;
    if (isStream(d)) {
      res._used = true;
      return streaming ? [status, headers, pumpOf(d)] : collect(d).then((b) => [status, headers, b]);
    }
    return [status, headers, d];
  }
  const NO_EDITS = Object.freeze([]);
  const APP_CTX = Object.freeze({ waitUntil: (p) => void Promise.resolve(p).catch(reportError), passThroughOnException() {} });
  const finishApp = (res) => finish(res, 'fetch()', false);
  const finishAppStreaming = (res) => finish(res, 'fetch()', true);
  // `clientIp` is read-only (a getter: assigning it throws in a module,
  // which is strict): a hook cannot make a later one, or the log, see
  // another client.
  function makeCtx(c) {
    const ip = c[5];
    return { app: c[0], tenant: c[1], base: c[2], requestId: c[3], vars: c[4], get clientIp() { return ip; } };
  }

  return {
    nextTimer,
    runTimer,
    fetchDone,
    // The headers of every plain text Response: the host knows them by
    // identity and does not read them.
    textHeaders: TEXT_HEADERS,
    // An SSR bundle's `render(request, env, ctx)` as a fetch handler: a
    // Response it returns is the answer; a ReadableStream (React's
    // renderToReadableStream) or an async iterable of strings or bytes is
    // the HTML page sent chunk by chunk as render makes them; an array
    // its strings joined; another object an error (a 500, logged);
    // anything else the HTML page as a string.
    ssr(render) {
      const html = () => ({ headers: { 'content-type': 'text/html; charset=utf-8' } });
      return {
        fetch(request, env, ctx) {
          return then(render(request, env, ctx), (out) => {
            if (out instanceof Response) return out;
            if (out !== null && typeof out === 'object') {
              if (isStream(out)) return new Response(out, html());
              if (typeof out[Symbol.asyncIterator] === 'function') {
                return new Response(streams().ReadableStream.from(out), html());
              }
              if (Array.isArray(out)) return new Response(out.join(''), html());
              if (ArrayBuffer.isView(out) || out instanceof ArrayBuffer) return new Response(out, html());
              // `{ html }` and the like would be sent as "[object Object]".
              const keys = Object.keys(out).slice(0, 3).join(', ');
              throw new TypeError(
                `render() returned an object ({ ${keys} }), not a page: return the HTML as a string, a Response, or a ReadableStream`,
              );
            }
            return new Response(out == null ? '' : String(out), html());
          });
        },
      };
    },
    // `entry.fetch(request, env, ctx)`: a JS app.
    // `streaming`: a body stream is handed to the host as it comes
    // (`pumpOf`), else collected first.
    // `body`: the bytes, null, or the id of a body still arriving.
    app(entry, method, url, flat, body, env, streaming) {
      const data = typeof body === 'number' ? new HostBody(body) : body;
      const res = entry.fetch(Request._from(method, url, flat, data), env, APP_CTX);
      if (res instanceof Response) return finish(res, 'fetch()', streaming);
      return then(res, streaming ? finishAppStreaming : finishApp);
    },
    // `fetch` and `onRequest` of a JS plugin; `body`: what the kernel read
    // of the request's body (within the plugin's `max_body_bytes`), or null.
    request(fn, name, method, url, flat, cx, body) {
      const request = Request._from(method, url, flat, body);
      const ctx = makeCtx(cx);
      return then(fn(request, ctx), (out) => {
        if (out === undefined || out === null) {
          const app = ctx.app == null ? null : String(ctx.app);
          const tenant = ctx.tenant == null ? null : String(ctx.tenant);
          const vars = ctx.vars !== null && typeof ctx.vars === 'object' ? ctx.vars : null;
          return [0, request._headers === null ? NO_EDITS : request._headers._ops, app, tenant, vars];
        }
        return then(finish(out, name, false), (r) => [1, ...r]);
      });
    },
    // `onResponse` of a JS plugin.
    response(fn, status, flat, cx) {
      const response = Response._from(status, flat);
      return then(fn(response, makeCtx(cx)), (out) => {
        if (out === undefined || out === null || out === response) {
          return [0, response._headers === null ? NO_EDITS : response._headers._ops];
        }
        return then(finish(out, 'onResponse', false), (r) => [1, ...r]);
      });
    },
    // `onInit(config)` of a JS plugin.
    init(fn, config) {
      return then(fn(config), () => null);
    },
  };
});
