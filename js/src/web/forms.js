// Blob, File and FormData, loaded into an isolate on first use (as the
// Streams API is): `native.loadForms()` evaluates this and the prelude keeps
// what it returns. Multipart bodies are parsed in Rust
// (`native.multipartParse`, multipart.rs) and written here.
(function (native) {
  'use strict';

  function bytesOfPart(p) {
    if (typeof p === 'string') return native.utf8Encode(p);
    if (p instanceof Blob) return p._bytes;
    if (p instanceof ArrayBuffer) return new Uint8Array(p);
    if (ArrayBuffer.isView(p)) return new Uint8Array(p.buffer, p.byteOffset, p.byteLength);
    return native.utf8Encode(String(p));
  }
  function concat(list) {
    let total = 0;
    for (const b of list) total += b.length;
    const out = new Uint8Array(total);
    let at = 0;
    for (const b of list) { out.set(b, at); at += b.length; }
    return out;
  }
  // A type is kept only if it is printable ASCII, and lower-cased.
  const normType = (t) => (t === undefined || /[^\u0020-\u007e]/.test(String(t)) ? '' : String(t).toLowerCase());

  class Blob {
    constructor(parts = [], options = {}) {
      if (parts === null || typeof parts !== 'object' || typeof parts[Symbol.iterator] !== 'function') {
        throw new TypeError("Blob: the parts must be a sequence (an array)");
      }
      const list = [];
      for (const p of parts) list.push(bytesOfPart(p));
      Object.defineProperty(this, '_bytes', { value: list.length === 1 ? list[0].slice() : concat(list) });
      Object.defineProperty(this, '_type', { value: normType(options && options.type) });
    }
    get size() { return this._bytes.length; }
    get type() { return this._type; }
    slice(start = 0, end = this._bytes.length, type = '') {
      const n = this._bytes.length;
      const clamp = (x) => (x < 0 ? Math.max(n + x, 0) : Math.min(x, n));
      const [a, b] = [clamp(Math.trunc(Number(start) || 0)), clamp(Math.trunc(Number(end)))];
      return new Blob([this._bytes.subarray(a, Math.max(a, b))], { type });
    }
    async text() { return native.utf8Decode(this._bytes, false, false); }
    async arrayBuffer() { return this._bytes.slice().buffer; }
    async bytes() { return this._bytes.slice(); }
    stream() {
      const bytes = this._bytes;
      return new ReadableStream({ start(c) { if (bytes.length) c.enqueue(bytes.slice()); c.close(); } });
    }
    get [Symbol.toStringTag]() { return 'Blob'; }
  }

  class File extends Blob {
    constructor(parts, name, options = {}) {
      if (arguments.length < 2) throw new TypeError('File: a name is needed');
      super(parts, options);
      Object.defineProperty(this, '_name', { value: String(name) });
      const lm = options && options.lastModified !== undefined ? Number(options.lastModified) : Date.now();
      Object.defineProperty(this, '_lastModified', { value: Number.isFinite(lm) ? Math.trunc(lm) : 0 });
    }
    get name() { return this._name; }
    get lastModified() { return this._lastModified; }
    get webkitRelativePath() { return ''; }
    get [Symbol.toStringTag]() { return 'File'; }
  }

  // An entry's value: a string, or a File (a Blob becomes a File "blob").
  function entryValue(value, filename) {
    if (value instanceof Blob) {
      if (!(value instanceof File) || filename !== undefined) {
        const name = filename !== undefined ? String(filename) : value instanceof File ? value.name : 'blob';
        return new File([value], name, { type: value.type, lastModified: value instanceof File ? value.lastModified : undefined });
      }
      return value;
    }
    return String(value);
  }

  class FormData {
    constructor(form) {
      if (form !== undefined) throw new TypeError('FormData: there is no HTML form element here');
      Object.defineProperty(this, '_list', { value: [] });
    }
    append(name, value, filename) { this._list.push([String(name), entryValue(value, filename)]); }
    set(name, value, filename) {
      const n = String(name);
      const v = entryValue(value, filename);
      const i = this._list.findIndex((e) => e[0] === n);
      if (i < 0) { this._list.push([n, v]); return; }
      this._list[i] = [n, v];
      for (let j = this._list.length - 1; j > i; j--) if (this._list[j][0] === n) this._list.splice(j, 1);
    }
    get(name) {
      const e = this._list.find((x) => x[0] === String(name));
      return e ? e[1] : null;
    }
    getAll(name) { return this._list.filter((x) => x[0] === String(name)).map((x) => x[1]); }
    has(name) { return this._list.some((x) => x[0] === String(name)); }
    delete(name) {
      const n = String(name);
      for (let j = this._list.length - 1; j >= 0; j--) if (this._list[j][0] === n) this._list.splice(j, 1);
    }
    forEach(fn, thisArg) { for (const [k, v] of this._list) fn.call(thisArg, v, k, this); }
    *entries() { for (const [k, v] of this._list) yield [k, v]; }
    *keys() { for (const [k] of this._list) yield k; }
    *values() { for (const [, v] of this._list) yield v; }
    [Symbol.iterator]() { return this.entries(); }
    get [Symbol.toStringTag]() { return 'FormData'; }
  }

  // The body of a form as multipart/form-data: [bytes, contentType].
  const escapeName = (s) => s.replace(/\r/g, '%0D').replace(/\n/g, '%0A').replace(/"/g, '%22');
  function encodeMultipart(fd) {
    const rnd = native.randomBytes(12);
    const boundary = `----bextFormBoundary${Array.from(rnd, (b) => b.toString(16).padStart(2, '0')).join('')}`;
    const out = [];
    for (const [name, value] of fd._list) {
      let head = `--${boundary}\r\nContent-Disposition: form-data; name="${escapeName(name)}"`;
      if (value instanceof File) {
        head += `; filename="${escapeName(value.name)}"\r\nContent-Type: ${value.type || 'application/octet-stream'}`;
        out.push(native.utf8Encode(`${head}\r\n\r\n`), value._bytes, native.utf8Encode('\r\n'));
      } else {
        out.push(native.utf8Encode(`${head}\r\n\r\n${value.replace(/\r?\n|\r/g, '\r\n')}\r\n`));
      }
    }
    out.push(native.utf8Encode(`--${boundary}--\r\n`));
    return [concat(out), `multipart/form-data; boundary=${boundary}`];
  }

  // A body as a FormData, by its content type.
  function decodeForm(bytes, contentType) {
    const type = String(contentType || '');
    const essence = type.split(';')[0].trim().toLowerCase();
    const fd = new FormData();
    if (essence === 'multipart/form-data') {
      const flat = native.multipartParse(bytes, type);
      for (let i = 0; i < flat.length; i += 4) {
        const [name, filename, ctype, data] = [flat[i], flat[i + 1], flat[i + 2], flat[i + 3]];
        if (filename === null) fd.append(name, native.utf8Decode(data, false, false));
        else fd.append(name, new File([data], filename, { type: ctype || '' }));
      }
      return fd;
    }
    if (essence === 'application/x-www-form-urlencoded') {
      const flat = native.formParse(native.utf8Decode(bytes, false, false));
      for (let i = 0; i < flat.length; i += 2) fd.append(flat[i], flat[i + 1]);
      return fd;
    }
    throw new TypeError(`formData(): the body is ${essence || 'untyped'}, not multipart/form-data or application/x-www-form-urlencoded`);
  }

  return { Blob, File, FormData, encodeMultipart, decodeForm };
});
