// bext's Streams API, loaded into an isolate on the first use of a stream
// global (hello-world apps never pay for it). The WHATWG classes come from
// the vendored web-streams-polyfill (`S`, see streams-polyfill.js and
// docs/dependencies.md); this adds what it leaves out: the encoding
// streams, and the compression streams over `flate2` in Rust (`native.z*`).
(function (native, S) {
  'use strict';
  const { TransformStream } = S;

  function bytesOf(chunk, what) {
    if (chunk instanceof Uint8Array) return chunk;
    if (chunk instanceof ArrayBuffer) return new Uint8Array(chunk);
    if (ArrayBuffer.isView(chunk)) return new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    throw new TypeError(`${what}: a chunk must be an ArrayBuffer or a view of one`);
  }

  // A pair of readable and writable sides, as the spec's classes expose.
  class Pair {
    constructor(transformer) {
      const t = new TransformStream(transformer);
      Object.defineProperty(this, '_t', { value: t });
    }
    get readable() { return this._t.readable; }
    get writable() { return this._t.writable; }
  }

  class TextEncoderStream extends Pair {
    constructor() {
      let high = ''; // a lone high surrogate waiting for its pair
      super({
        transform(chunk, c) {
          let s = high + String(chunk);
          high = '';
          const last = s.charCodeAt(s.length - 1);
          if (last >= 0xd800 && last <= 0xdbff) { high = s.slice(-1); s = s.slice(0, -1); }
          if (s.length) c.enqueue(native.utf8Encode(s));
        },
        flush(c) {
          if (high) c.enqueue(native.utf8Encode('\ufffd'));
        },
      });
    }
    get encoding() { return 'utf-8'; }
  }

  // Bytes at the end of `b` that start a UTF-8 sequence not yet complete.
  function incompleteTail(b) {
    for (let back = 1; back <= Math.min(3, b.length); back++) {
      const x = b[b.length - back];
      if ((x & 0xc0) === 0x80) continue; // a continuation byte: look further back
      const need = x >= 0xf0 ? 4 : x >= 0xe0 ? 3 : x >= 0xc0 ? 2 : 1;
      return need > back ? back : 0;
    }
    return 0;
  }

  class TextDecoderStream extends Pair {
    constructor(label = 'utf-8', options = {}) {
      const decoder = new TextDecoder(label, options); // checks the label
      const fatal = decoder.fatal;
      let pending = new Uint8Array(0);
      let first = true;
      const decode = (b) => {
        const out = native.utf8Decode(b, fatal, decoder.ignoreBOM || !first);
        if (b.length) first = false;
        return out;
      };
      super({
        transform(chunk, c) {
          const b = bytesOf(chunk, 'TextDecoderStream');
          const all = new Uint8Array(pending.length + b.length);
          all.set(pending, 0);
          all.set(b, pending.length);
          const keep = incompleteTail(all);
          pending = all.slice(all.length - keep);
          const s = decode(all.subarray(0, all.length - keep));
          if (s.length) c.enqueue(s);
        },
        flush(c) {
          if (!pending.length) return;
          const s = decode(pending); // throws when fatal, U+FFFD otherwise
          if (s.length) c.enqueue(s);
        },
      });
      Object.defineProperties(this, { fatal: { value: fatal }, ignoreBOM: { value: decoder.ignoreBOM } });
    }
    get encoding() { return 'utf-8'; }
  }

  const FORMATS = new Set(['gzip', 'deflate', 'deflate-raw']);
  function coder(format, compress, name) {
    const f = String(format);
    if (!FORMATS.has(f)) throw new TypeError(`${name}: unsupported format ${f} (gzip, deflate or deflate-raw)`);
    let id = -1;
    const free = () => { if (id >= 0) native.zFree(id); id = -1; };
    return {
      start() { id = native.zNew(f, compress); },
      transform(chunk, c) {
        const out = native.zPush(id, bytesOf(chunk, name), false);
        if (out.length) c.enqueue(out);
      },
      flush(c) {
        try {
          const out = native.zPush(id, new Uint8Array(0), true);
          if (out.length) c.enqueue(out);
        } finally { free(); }
      },
      cancel() { free(); },
    };
  }
  class CompressionStream extends Pair {
    constructor(format) { super(coder(format, true, 'CompressionStream')); }
  }
  class DecompressionStream extends Pair {
    constructor(format) { super(coder(format, false, 'DecompressionStream')); }
  }

  return Object.assign({}, S, { TextEncoderStream, TextDecoderStream, CompressionStream, DecompressionStream });
});
