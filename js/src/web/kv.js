// KV namespaces, the Workers KV API (`env.SESSIONS.get(...)`), over the
// natives of js/src/bindings/kv.rs. Each call starts an operation in Rust
// and waits for its answer as a fetch does: through the prelude's pending
// map (`native.pending`), settled by `fetchDone`.
//
// Called by the host with `native` after the prelude; returns the kit the
// host makes `env` entries with.
(function (native) {
  'use strict';
  const pending = native.pending;
  const encoder = new TextEncoder();
  const decoder = new TextDecoder();

  // Waits for operation `id`; its value goes through `map`.
  function settle(id, what, map) {
    return new Promise((resolve, reject) => {
      pending.set(id, {
        op(error, value) {
          if (error !== null) {
            reject(new Error(`${what} failed: ${error}`));
            return;
          }
          try {
            resolve(map(value));
          } catch (e) {
            reject(e);
          }
        },
      });
    });
  }

  function keyOf(key, what) {
    if (typeof key !== 'string') throw new TypeError(`${what}: the key must be a string, got ${typeof key}`);
    return key;
  }

  const TYPES = ['text', 'json', 'arrayBuffer', 'stream'];
  function typeOf(options, what) {
    const type = options === undefined || options === null ? 'text' : typeof options === 'string' ? options : options.type === undefined ? 'text' : options.type;
    if (!TYPES.includes(type)) throw new TypeError(`${what}: unknown type ${String(type)} (text, json, arrayBuffer or stream)`);
    return type;
  }

  function decode(bytes, type) {
    switch (type) {
      case 'json':
        return JSON.parse(decoder.decode(bytes));
      case 'arrayBuffer':
        return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
      case 'stream':
        return new Response(bytes).body;
      default:
        return decoder.decode(bytes);
    }
  }

  async function bytesOf(value, what) {
    if (typeof value === 'string') return encoder.encode(value);
    if (value instanceof ArrayBuffer) return new Uint8Array(value.slice(0));
    if (ArrayBuffer.isView(value)) return new Uint8Array(value.buffer.slice(value.byteOffset, value.byteOffset + value.byteLength));
    if (value instanceof ReadableStream) return new Uint8Array(await new Response(value).arrayBuffer());
    throw new TypeError(`${what}: the value must be a string, ArrayBuffer, ArrayBufferView or ReadableStream`);
  }

  function number(v, name, what) {
    if (v === undefined || v === null) return -1;
    const n = Number(v);
    if (!Number.isFinite(n) || n < 0) throw new TypeError(`${what}: ${name} must be a non-negative number of seconds`);
    return n;
  }

  class KVNamespace {
    constructor(name) {
      Object.defineProperty(this, '_name', { value: name });
    }
    async get(key, options) {
      const what = `KV ${this._name}.get()`;
      const type = typeOf(options, what);
      const id = native.kvGet(this._name, keyOf(key, what));
      return settle(id, what, (got) => (got === null ? null : decode(got[0], type)));
    }
    async getWithMetadata(key, options) {
      const what = `KV ${this._name}.getWithMetadata()`;
      const type = typeOf(options, what);
      const id = native.kvGet(this._name, keyOf(key, what));
      return settle(id, what, (got) =>
        got === null ? { value: null, metadata: null } : { value: decode(got[0], type), metadata: got[1] === null ? null : JSON.parse(got[1]) },
      );
    }
    async put(key, value, options) {
      const what = `KV ${this._name}.put()`;
      keyOf(key, what);
      const o = options === undefined || options === null ? {} : options;
      if (typeof o !== 'object') throw new TypeError(`${what}: options must be an object`);
      let metadata = null;
      if (o.metadata !== undefined && o.metadata !== null) {
        try {
          metadata = JSON.stringify(o.metadata);
        } catch (e) {
          throw new TypeError(`${what}: metadata must be serializable to JSON (${e.message})`);
        }
        if (metadata === undefined) throw new TypeError(`${what}: metadata must be serializable to JSON`);
      }
      const expiration = number(o.expiration, 'expiration', what);
      const ttl = number(o.expirationTtl, 'expirationTtl', what);
      const bytes = await bytesOf(value, what);
      const id = native.kvPut(this._name, key, bytes, metadata, expiration, ttl);
      return settle(id, what, () => undefined);
    }
    async delete(key) {
      const what = `KV ${this._name}.delete()`;
      const id = native.kvDelete(this._name, keyOf(key, what));
      return settle(id, what, () => undefined);
    }
    async list(options) {
      const what = `KV ${this._name}.list()`;
      const o = options === undefined || options === null ? {} : options;
      if (typeof o !== 'object') throw new TypeError(`${what}: options must be an object`);
      const prefix = o.prefix === undefined || o.prefix === null ? '' : String(o.prefix);
      const limit = o.limit === undefined || o.limit === null ? 1000 : Number(o.limit);
      if (!Number.isInteger(limit)) throw new TypeError(`${what}: limit must be an integer`);
      const cursor = o.cursor === undefined || o.cursor === null ? null : String(o.cursor);
      const id = native.kvList(this._name, prefix, limit, cursor);
      return settle(id, what, ([names, expirations, metadata, next]) => {
        const keys = names.map((name, i) => {
          const k = { name };
          if (expirations[i] !== null && expirations[i] !== undefined) k.expiration = expirations[i];
          if (metadata[i] !== null && metadata[i] !== undefined) k.metadata = JSON.parse(metadata[i]);
          return k;
        });
        return next === null || next === undefined ? { keys, list_complete: true, cacheStatus: null } : { keys, list_complete: false, cursor: next, cacheStatus: null };
      });
    }
    get [Symbol.toStringTag]() {
      return 'KVNamespace';
    }
  }

  return {
    namespace: (name) => new KVNamespace(name),
  };
});
