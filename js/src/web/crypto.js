// bext's Web Crypto: `crypto.getRandomValues`, `crypto.randomUUID` and
// `crypto.subtle`, evaluated in every isolate right after prelude.js with
// the same `native` object.
//
// The primitives run in Rust (js/src/crypto). This file keeps CryptoKey
// objects (their key material in a WeakMap, out of reach of user code) and
// applies the Web Crypto spec's checks in its order: unknown algorithms
// NotSupportedError, a key used for another algorithm or usage
// InvalidAccessError, bad usages at import SyntaxError, bad key data
// DataError, a failed operation OperationError; every method returns a
// Promise.
(function (native) {
  'use strict';
  const g = globalThis;
  const define = (name, value) =>
    Object.defineProperty(g, name, { value, writable: true, configurable: true, enumerable: false });
  const DOMException = g.DOMException;
  const dom = (message, name) => new DOMException(message, name);

  // The natives throw an Error named after the DOMException it stands for.
  const NATIVE_ERRORS = new Set(['DataError', 'OperationError', 'NotSupportedError']);
  function call(f, ...args) {
    try {
      return f(...args);
    } catch (e) {
      if (e instanceof Error && !(e instanceof DOMException) && NATIVE_ERRORS.has(e.name)) throw dom(e.message, e.name);
      throw e;
    }
  }

  // ----------------------------------------------------------------- bytes
  function bytesOf(x, what) {
    if (x instanceof ArrayBuffer) return new Uint8Array(x.slice(0));
    if (ArrayBuffer.isView(x)) return new Uint8Array(x.buffer.slice(x.byteOffset, x.byteOffset + x.byteLength));
    throw new TypeError(`${what}: expected an ArrayBuffer or a view of one`);
  }
  const EMPTY = new Uint8Array(0);
  const b64url = (bytes) =>
    btoa(Array.from(bytes, (b) => String.fromCharCode(b)).join('')).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
  function unb64url(s, what) {
    if (typeof s !== 'string' || /[^A-Za-z0-9_-]/.test(s)) throw dom(`JWK member ${what} is not base64url`, 'DataError');
    try {
      return Uint8Array.from(atob(s.replace(/-/g, '+').replace(/_/g, '/')), (c) => c.charCodeAt(0));
    } catch (_) {
      throw dom(`JWK member ${what} is not base64url`, 'DataError');
    }
  }
  const buffer = (u8) => u8.buffer.byteLength === u8.byteLength ? u8.buffer : u8.slice().buffer;

  // ------------------------------------------------------------ algorithms
  const HASHES = ['SHA-1', 'SHA-256', 'SHA-384', 'SHA-512'];
  const SIGNERS = ['RSASSA-PKCS1-v1_5', 'RSA-PSS', 'ECDSA', 'Ed25519', 'HMAC'];
  const CIPHERS = ['RSA-OAEP', 'AES-CTR', 'AES-CBC', 'AES-GCM'];
  const KDFS = ['PBKDF2', 'HKDF'];
  const AES = ['AES-CTR', 'AES-CBC', 'AES-GCM'];
  const RSA = ['RSASSA-PKCS1-v1_5', 'RSA-PSS', 'RSA-OAEP'];
  const SUPPORTED = {
    digest: HASHES,
    sign: SIGNERS,
    verify: SIGNERS,
    encrypt: CIPHERS,
    decrypt: CIPHERS,
    generateKey: [...RSA, 'ECDSA', 'Ed25519', ...AES, 'HMAC'],
    importKey: [...RSA, 'ECDSA', 'Ed25519', ...AES, 'HMAC', ...KDFS],
    deriveBits: KDFS,
    derivedKey: [...AES, 'HMAC'],
  };
  // Every name the spec registers, so that its case is normalised even when
  // this build does not implement it (it then rejects NotSupportedError).
  const CANONICAL = new Map(
    [...RSA, 'ECDSA', 'ECDH', 'Ed25519', 'X25519', ...AES, 'AES-KW', 'HMAC', ...HASHES, ...KDFS].map((n) => [n.toUpperCase(), n]),
  );
  function normalize(op, algorithm) {
    const a = typeof algorithm === 'string' ? { name: algorithm } : algorithm;
    if (a === null || typeof a !== 'object') throw new TypeError(`${op}: the algorithm must be a string or an object`);
    if (typeof a.name !== 'string') throw new TypeError(`${op}: the algorithm needs a name`);
    const name = CANONICAL.get(a.name.toUpperCase());
    if (!name || !SUPPORTED[op].includes(name)) throw dom(`${a.name} is not supported for ${op}`, 'NotSupportedError');
    const out = Object.assign({}, a, { name });
    if (a.hash !== undefined) out.hash = normalize('digest', a.hash);
    return out;
  }
  function need(params, member, op) {
    if (params[member] === undefined) throw new TypeError(`${op} ${params.name}: ${member} is required`);
    return params[member];
  }
  const hashOf = (params, op) => need(params, 'hash', op).name;

  // ------------------------------------------------------------- CryptoKey
  const slots = new WeakMap();
  class CryptoKey {
    constructor() { throw new TypeError('Illegal constructor'); }
    get type() { return slot(this).type; }
    get extractable() { return slot(this).extractable; }
    get algorithm() { return slot(this).algorithm; }
    get usages() { return slot(this).usages; }
    get [Symbol.toStringTag]() { return 'CryptoKey'; }
  }
  function slot(key) {
    const s = slots.get(key);
    if (!s) throw new TypeError('expected a CryptoKey');
    return s;
  }
  const USAGES = ['encrypt', 'decrypt', 'sign', 'verify', 'deriveKey', 'deriveBits', 'wrapKey', 'unwrapKey'];
  function usageList(usages) {
    if (usages === null || typeof usages !== 'object' || typeof usages[Symbol.iterator] !== 'function') {
      throw new TypeError('key usages must be a sequence');
    }
    const out = [];
    for (const u of usages) {
      if (!USAGES.includes(u)) throw new TypeError(`${String(u)} is not a key usage`);
      if (!out.includes(u)) out.push(u);
    }
    return out;
  }
  // What each algorithm's keys may be used for, by key type.
  const SIGN = { private: ['sign'], public: ['verify'] };
  const ALLOWED = {
    'RSASSA-PKCS1-v1_5': SIGN, 'RSA-PSS': SIGN, ECDSA: SIGN, Ed25519: SIGN,
    'RSA-OAEP': { private: ['decrypt', 'unwrapKey'], public: ['encrypt', 'wrapKey'] },
    'AES-CTR': { secret: ['encrypt', 'decrypt', 'wrapKey', 'unwrapKey'] },
    'AES-CBC': { secret: ['encrypt', 'decrypt', 'wrapKey', 'unwrapKey'] },
    'AES-GCM': { secret: ['encrypt', 'decrypt', 'wrapKey', 'unwrapKey'] },
    HMAC: { secret: ['sign', 'verify'] },
    PBKDF2: { secret: ['deriveKey', 'deriveBits'] },
    HKDF: { secret: ['deriveKey', 'deriveBits'] },
  };
  function checkUsages(name, types, usages) {
    const allowed = types.flatMap((t) => ALLOWED[name][t] || []);
    for (const u of usages) if (!allowed.includes(u)) throw dom(`a ${name} key cannot be used to ${u}`, 'SyntaxError');
  }
  // `material`: raw bytes of a secret key, DER of an asymmetric one
  // (PKCS#8 private, SPKI public); `kind`: RSA, P-256, P-384 or Ed25519.
  function makeKey(type, extractable, algorithm, usages, material, kind) {
    const usable = usages.filter((u) => ALLOWED[algorithm.name][type].includes(u));
    if (usable.length === 0 && type !== 'public') throw dom(`a ${type} key needs at least one usage`, 'SyntaxError');
    const k = Object.create(CryptoKey.prototype);
    slots.set(k, {
      type, extractable: !!extractable, algorithm: Object.freeze(algorithm), usages: Object.freeze(usable), material, kind,
    });
    return k;
  }
  function useKey(key, params, usage) {
    const s = slot(key);
    if (s.algorithm.name !== params.name) throw dom(`the key is a ${s.algorithm.name} key, not ${params.name}`, 'InvalidAccessError');
    if (!s.usages.includes(usage)) throw dom(`the key cannot be used to ${usage}`, 'InvalidAccessError');
    return s;
  }

  // ------------------------------------------------------------------- JWK
  const JWK_ALG = {
    HMAC: (h) => ({ 'SHA-1': 'HS1', 'SHA-256': 'HS256', 'SHA-384': 'HS384', 'SHA-512': 'HS512' })[h],
    'RSASSA-PKCS1-v1_5': (h) => ({ 'SHA-1': 'RS1', 'SHA-256': 'RS256', 'SHA-384': 'RS384', 'SHA-512': 'RS512' })[h],
    'RSA-PSS': (h) => ({ 'SHA-1': 'PS1', 'SHA-256': 'PS256', 'SHA-384': 'PS384', 'SHA-512': 'PS512' })[h],
    'RSA-OAEP': (h) => ({ 'SHA-1': 'RSA-OAEP', 'SHA-256': 'RSA-OAEP-256', 'SHA-384': 'RSA-OAEP-384', 'SHA-512': 'RSA-OAEP-512' })[h],
  };
  const aesJwkAlg = (name, bits) => `A${bits}${name.slice(4)}`;
  function checkJwk(jwk, kty, usages, extractable, use) {
    if (jwk === null || typeof jwk !== 'object') throw new TypeError('importKey: a JWK must be an object');
    if (jwk.kty !== kty) throw dom(`the JWK's kty is ${jwk.kty}, not ${kty}`, 'DataError');
    if (jwk.use !== undefined && usages.length > 0 && jwk.use !== use) throw dom(`the JWK's use is ${jwk.use}, not ${use}`, 'DataError');
    if (jwk.key_ops !== undefined) {
      if (!Array.isArray(jwk.key_ops)) throw dom('the JWK key_ops is not a list', 'DataError');
      for (const u of usages) if (!jwk.key_ops.includes(u)) throw dom(`the JWK's key_ops do not allow ${u}`, 'DataError');
    }
    if (jwk.ext === false && extractable) throw dom('the JWK is not extractable', 'DataError');
  }
  const jwkUse = (name) => (name === 'RSA-OAEP' || AES.includes(name) ? 'enc' : 'sig');
  const optionalPart = (jwk, m) => (jwk[m] === undefined ? null : unb64url(jwk[m], m));

  // ---------------------------------------------------------------- import
  const FORMATS = ['raw', 'spki', 'pkcs8', 'jwk'];
  function importSecret(format, keyData, params, extractable, usages) {
    const name = params.name;
    checkUsages(name, ['secret'], usages);
    if (KDFS.includes(name)) {
      if (format !== 'raw') throw dom(`a ${name} key is imported from raw bytes only`, 'NotSupportedError');
      if (extractable) throw dom(`a ${name} key cannot be extractable`, 'SyntaxError');
      return makeKey('secret', false, { name }, usages, bytesOf(keyData, 'importKey'));
    }
    let raw;
    if (format === 'raw') raw = bytesOf(keyData, 'importKey');
    else if (format === 'jwk') {
      checkJwk(keyData, 'oct', usages, extractable, jwkUse(name));
      raw = unb64url(keyData.k, 'k');
    } else throw dom(`a ${name} key cannot be imported as ${format}`, 'NotSupportedError');
    if (name === 'HMAC') {
      const hash = hashOf(params, 'importKey');
      if (format === 'jwk' && keyData.alg !== undefined && keyData.alg !== JWK_ALG.HMAC(hash)) {
        throw dom(`the JWK's alg ${keyData.alg} is not ${JWK_ALG.HMAC(hash)}`, 'DataError');
      }
      if (raw.length === 0) throw dom('an HMAC key cannot be empty', 'DataError');
      let length = raw.length * 8;
      if (params.length !== undefined) {
        const l = Number(params.length);
        if (!(l <= length && l > length - 8)) throw dom('length does not match the key', 'DataError');
        length = l;
      }
      return makeKey('secret', extractable, { name, hash: { name: hash }, length }, usages, raw);
    }
    const bits = raw.length * 8;
    if (![128, 192, 256].includes(bits)) throw dom(`an AES key is 128, 192 or 256 bits, not ${bits}`, 'DataError');
    if (format === 'jwk' && keyData.alg !== undefined && keyData.alg !== aesJwkAlg(name, bits)) {
      throw dom(`the JWK's alg ${keyData.alg} is not ${aesJwkAlg(name, bits)}`, 'DataError');
    }
    return makeKey('secret', extractable, { name, length: bits }, usages, raw);
  }
  const CURVES = ['P-256', 'P-384'];
  const EC_JWK_ALG = { ES256: 'P-256', ES384: 'P-384', ES512: 'P-521' };
  function importAsymmetric(format, keyData, params, extractable, usages) {
    const name = params.name;
    let kind;
    const algorithm = { name };
    if (RSA.includes(name)) {
      kind = 'RSA';
      algorithm.hash = { name: hashOf(params, 'importKey') };
    } else if (name === 'ECDSA') {
      const curve = need(params, 'namedCurve', 'importKey');
      if (!CURVES.includes(curve)) throw dom(`curve ${curve} is not supported`, 'NotSupportedError');
      kind = algorithm.namedCurve = curve;
    } else kind = 'Ed25519';
    let type;
    let imported;
    if (format === 'jwk') {
      const kty = kind === 'RSA' ? 'RSA' : kind === 'Ed25519' ? 'OKP' : 'EC';
      checkJwk(keyData, kty, usages, extractable, jwkUse(name));
      type = keyData.d === undefined ? 'public' : 'private';
      let parts;
      if (kind === 'RSA') {
        const alg = JWK_ALG[name](algorithm.hash.name);
        if (keyData.alg !== undefined && keyData.alg !== alg) throw dom(`the JWK's alg ${keyData.alg} is not ${alg}`, 'DataError');
        parts = ['n', 'e', 'd', 'p', 'q', 'dp', 'dq', 'qi'].map((m) => optionalPart(keyData, m));
      } else if (kind === 'Ed25519') {
        if (keyData.crv !== 'Ed25519') throw dom(`the JWK's crv is ${keyData.crv}, not Ed25519`, 'DataError');
        if (keyData.alg !== undefined && keyData.alg !== 'EdDSA' && keyData.alg !== 'Ed25519') {
          throw dom(`the JWK's alg ${keyData.alg} is not EdDSA`, 'DataError');
        }
        parts = ['x', 'd'].map((m) => optionalPart(keyData, m));
      } else {
        if (keyData.crv !== kind) throw dom(`the JWK's crv is ${keyData.crv}, not ${kind}`, 'DataError');
        if (keyData.alg !== undefined && EC_JWK_ALG[keyData.alg] !== kind) throw dom(`the JWK's alg ${keyData.alg} is not for ${kind}`, 'DataError');
        parts = ['x', 'y', 'd'].map((m) => optionalPart(keyData, m));
      }
      checkUsages(name, [type], usages);
      imported = call(native.keyImportJwk, kind, type === 'private', parts);
    } else {
      if (format === 'raw' && kind === 'RSA') throw dom('an RSA key cannot be imported as raw', 'NotSupportedError');
      type = format === 'pkcs8' ? 'private' : 'public';
      checkUsages(name, [type], usages);
      imported = call(native.keyImport, kind, format, type === 'private', bytesOf(keyData, 'importKey'));
    }
    if (kind === 'RSA') {
      algorithm.modulusLength = imported[1];
      algorithm.publicExponent = imported[2];
    }
    return makeKey(type, extractable, algorithm, usages, imported[0], kind);
  }
  function importKey(format, keyData, algorithm, extractable, keyUsages) {
    if (!FORMATS.includes(format)) throw new TypeError(`${String(format)} is not a key format`);
    if (format !== 'jwk' && !(keyData instanceof ArrayBuffer || ArrayBuffer.isView(keyData))) {
      throw new TypeError(`importKey: ${format} key data must be an ArrayBuffer or a view of one`);
    }
    if (format === 'jwk' && (keyData === null || typeof keyData !== 'object' || ArrayBuffer.isView(keyData))) {
      throw new TypeError('importKey: jwk key data must be a JSON Web Key object');
    }
    const params = normalize('importKey', algorithm);
    const usages = usageList(keyUsages);
    if (AES.includes(params.name) || KDFS.includes(params.name) || params.name === 'HMAC') {
      return importSecret(format, keyData, params, extractable, usages);
    }
    return importAsymmetric(format, keyData, params, extractable, usages);
  }

  // ---------------------------------------------------------------- export
  function exportKey(format, key) {
    if (!FORMATS.includes(format)) throw new TypeError(`${String(format)} is not a key format`);
    const s = slot(key);
    const name = s.algorithm.name;
    if (KDFS.includes(name)) throw dom(`a ${name} key cannot be exported`, 'NotSupportedError');
    if (!s.extractable) throw dom('the key is not extractable', 'InvalidAccessError');
    const jwkCommon = { key_ops: [...s.usages], ext: true };
    if (s.type === 'secret') {
      if (format === 'raw') return buffer(s.material.slice());
      if (format !== 'jwk') throw dom(`a ${name} key cannot be exported as ${format}`, 'NotSupportedError');
      const alg = name === 'HMAC' ? JWK_ALG.HMAC(s.algorithm.hash.name) : aesJwkAlg(name, s.algorithm.length);
      return { kty: 'oct', k: b64url(s.material), alg, ...jwkCommon };
    }
    const isPrivate = s.type === 'private';
    if (format === 'jwk') {
      const parts = call(native.keyExportJwk, s.kind, isPrivate, s.material).map(b64url);
      const named = (names) => Object.fromEntries(names.map((m, i) => [m, parts[i]]).filter(([, v]) => v !== undefined));
      if (s.kind === 'RSA') {
        return { kty: 'RSA', ...named(['n', 'e', 'd', 'p', 'q', 'dp', 'dq', 'qi']), alg: JWK_ALG[name](s.algorithm.hash.name), ...jwkCommon };
      }
      if (s.kind === 'Ed25519') return { kty: 'OKP', crv: 'Ed25519', ...named(['x', 'd']), ...jwkCommon };
      return { kty: 'EC', crv: s.kind, ...named(['x', 'y', 'd']), ...jwkCommon };
    }
    if (format === 'raw' && s.kind === 'RSA') throw dom('an RSA key cannot be exported as raw', 'NotSupportedError');
    if ((format === 'pkcs8') !== isPrivate) throw dom(`a ${s.type} key cannot be exported as ${format}`, 'InvalidAccessError');
    return buffer(call(native.keyExport, s.kind, format, isPrivate, s.material));
  }

  // -------------------------------------------------------------- generate
  const EXPONENT_65537 = new Uint8Array([1, 0, 1]);
  function generateKey(algorithm, extractable, keyUsages) {
    const params = normalize('generateKey', algorithm);
    const usages = usageList(keyUsages);
    const name = params.name;
    if (name === 'HMAC') {
      checkUsages(name, ['secret'], usages);
      const hash = hashOf(params, 'generateKey');
      const block = { 'SHA-1': 512, 'SHA-256': 512, 'SHA-384': 1024, 'SHA-512': 1024 }[hash];
      const length = params.length !== undefined ? Number(params.length) : block;
      if (!(length > 0) || length % 8 !== 0 || length > 65536 * 8) {
        throw dom('an HMAC key length is a positive multiple of 8, at most 65536 bytes', 'OperationError');
      }
      return makeKey('secret', extractable, { name, hash: { name: hash }, length }, usages, native.randomBytes(length / 8));
    }
    if (AES.includes(name)) {
      checkUsages(name, ['secret'], usages);
      const length = Number(need(params, 'length', 'generateKey'));
      if (![128, 192, 256].includes(length)) throw dom('an AES key is 128, 192 or 256 bits', 'OperationError');
      return makeKey('secret', extractable, { name, length }, usages, native.randomBytes(length / 8));
    }
    checkUsages(name, ['private', 'public'], usages);
    const algorithm_ = { name };
    let kind = 'Ed25519';
    let bits = 0;
    let exponent = EMPTY;
    if (RSA.includes(name)) {
      kind = 'RSA';
      bits = Number(need(params, 'modulusLength', 'generateKey'));
      const e = need(params, 'publicExponent', 'generateKey');
      if (!(e instanceof Uint8Array)) throw new TypeError('generateKey: publicExponent must be a Uint8Array');
      exponent = e.slice();
      algorithm_.hash = { name: hashOf(params, 'generateKey') };
    } else if (name === 'ECDSA') {
      const curve = need(params, 'namedCurve', 'generateKey');
      if (!CURVES.includes(curve)) throw dom(`curve ${curve} is not supported`, 'NotSupportedError');
      kind = algorithm_.namedCurve = curve;
    }
    const [priv, pub] = call(native.keyGenerate, kind, bits, exponent.length ? exponent : EXPONENT_65537);
    const withRsa = (der) => (kind === 'RSA' ? { ...algorithm_, modulusLength: der[1], publicExponent: der[2] } : { ...algorithm_ });
    const publicKey = makeKey('public', true, withRsa(pub), usages, pub[0], kind);
    const privateKey = makeKey('private', extractable, withRsa(priv), usages, priv[0], kind);
    return { publicKey, privateKey };
  }

  // ------------------------------------------------------ sign and verify
  function signParams(params, s, op) {
    switch (params.name) {
      case 'RSASSA-PKCS1-v1_5': return [s.algorithm.hash.name, 0];
      case 'RSA-PSS': {
        const salt = Number(need(params, 'saltLength', op));
        if (!Number.isInteger(salt) || salt < 0) throw new TypeError(`${op} RSA-PSS: saltLength must be a non-negative integer`);
        return [s.algorithm.hash.name, salt];
      }
      case 'ECDSA': return [hashOf(params, op), 0];
      default: return ['', 0];
    }
  }
  function sign(algorithm, key, data) {
    const params = normalize('sign', algorithm);
    const input = bytesOf(data, 'sign');
    const s = useKey(key, params, 'sign');
    if (params.name === 'HMAC') return buffer(call(native.hmacSign, s.algorithm.hash.name, s.material, input));
    const [hash, salt] = signParams(params, s, 'sign');
    return buffer(call(native.sign, params.name, s.kind, hash, salt, s.material, input));
  }
  function verify(algorithm, key, signature, data) {
    const params = normalize('verify', algorithm);
    const sig = bytesOf(signature, 'verify');
    const input = bytesOf(data, 'verify');
    const s = useKey(key, params, 'verify');
    if (params.name === 'HMAC') return call(native.hmacVerify, s.algorithm.hash.name, s.material, sig, input);
    const [hash, salt] = signParams(params, s, 'verify');
    return call(native.verify, [params.name, s.kind, hash], salt, s.material, sig, input);
  }

  // ---------------------------------------------------- encrypt / decrypt
  const GCM_TAGS = [32, 64, 96, 104, 112, 120, 128];
  function cipher(encrypt, params, s, input) {
    const op = encrypt ? 'encrypt' : 'decrypt';
    switch (params.name) {
      case 'RSA-OAEP': {
        const label = params.label === undefined ? EMPTY : bytesOf(params.label, `${op} label`);
        return call(native.rsaOaep, encrypt, s.algorithm.hash.name, label, s.material, input);
      }
      case 'AES-GCM': {
        const iv = bytesOf(need(params, 'iv', op), `${op} iv`);
        const aad = params.additionalData === undefined ? EMPTY : bytesOf(params.additionalData, `${op} additionalData`);
        const tag = params.tagLength === undefined ? 128 : Number(params.tagLength);
        if (!GCM_TAGS.includes(tag)) throw dom(`AES-GCM tagLength ${params.tagLength} is not allowed`, 'OperationError');
        if (!encrypt && input.length < tag / 8) throw dom('AES-GCM: the data is shorter than its tag', 'OperationError');
        return call(native.aesGcm, encrypt, s.material, iv, aad, tag, input);
      }
      case 'AES-CBC': {
        const iv = bytesOf(need(params, 'iv', op), `${op} iv`);
        if (iv.length !== 16) throw dom('AES-CBC: the iv must be 16 bytes', 'OperationError');
        return call(native.aesCbc, encrypt, s.material, iv, input);
      }
      default: {
        const counter = bytesOf(need(params, 'counter', op), `${op} counter`);
        const length = Number(need(params, 'length', op));
        if (counter.length !== 16) throw dom('AES-CTR: the counter must be 16 bytes', 'OperationError');
        if (!(length >= 1 && length <= 128)) throw dom('AES-CTR: length must be between 1 and 128', 'OperationError');
        return call(native.aesCtr, s.material, counter, length, input);
      }
    }
  }
  function encrypt(algorithm, key, data) {
    const params = normalize('encrypt', algorithm);
    const input = bytesOf(data, 'encrypt');
    return buffer(cipher(true, params, useKey(key, params, 'encrypt'), input));
  }
  function decrypt(algorithm, key, data) {
    const params = normalize('decrypt', algorithm);
    const input = bytesOf(data, 'decrypt');
    return buffer(cipher(false, params, useKey(key, params, 'decrypt'), input));
  }

  // --------------------------------------------------------------- derive
  function derive(params, s, length) {
    if (length === null || length === undefined) throw dom(`${params.name}: a length is needed`, 'OperationError');
    const bits = Number(length);
    if (!Number.isInteger(bits) || bits <= 0 || bits % 8 !== 0) throw dom(`${params.name}: length ${length} is not a positive multiple of 8`, 'OperationError');
    const hash = hashOf(params, 'deriveBits');
    const salt = bytesOf(need(params, 'salt', 'deriveBits'), 'deriveBits salt');
    if (params.name === 'PBKDF2') {
      const iterations = Number(need(params, 'iterations', 'deriveBits'));
      if (!Number.isInteger(iterations) || iterations < 0 || iterations > 0xffffffff) throw new TypeError('PBKDF2: iterations must be an unsigned integer');
      return call(native.pbkdf2, hash, s.material, salt, iterations, bits);
    }
    const info = bytesOf(need(params, 'info', 'deriveBits'), 'deriveBits info');
    return call(native.hkdf, hash, s.material, salt, info, bits);
  }
  function deriveBits(algorithm, baseKey, length) {
    const params = normalize('deriveBits', algorithm);
    return buffer(derive(params, useKey(baseKey, params, 'deriveBits'), length));
  }
  // The key length `deriveKey` derives for the derived key's algorithm.
  function derivedLength(params) {
    if (AES.includes(params.name)) {
      const l = Number(need(params, 'length', 'deriveKey'));
      if (![128, 192, 256].includes(l)) throw dom('an AES key is 128, 192 or 256 bits', 'OperationError');
      return l;
    }
    if (params.length !== undefined) {
      const l = Number(params.length);
      if (!(l > 0)) throw new TypeError('deriveKey: HMAC length must be positive');
      return l;
    }
    return { 'SHA-1': 512, 'SHA-256': 512, 'SHA-384': 1024, 'SHA-512': 1024 }[hashOf(params, 'deriveKey')];
  }
  function deriveKey(algorithm, baseKey, derivedKeyType, extractable, keyUsages) {
    const params = normalize('deriveBits', algorithm);
    const target = normalize('derivedKey', derivedKeyType);
    usageList(keyUsages);
    const length = derivedLength(target);
    const s = useKey(baseKey, params, 'deriveKey');
    const bits = derive(params, s, Math.ceil(length / 8) * 8);
    return importKey('raw', bits, derivedKeyType, extractable, keyUsages);
  }

  // ---------------------------------------------------------- wrap/unwrap
  function wrapKey(format, key, wrappingKey, wrapAlgorithm) {
    const params = normalize('encrypt', wrapAlgorithm);
    const s = useKey(wrappingKey, params, 'wrapKey');
    const exported = exportKey(format, key);
    const bytes = format === 'jwk' ? new TextEncoder().encode(JSON.stringify(exported)) : new Uint8Array(exported);
    return buffer(cipher(true, params, s, bytes));
  }
  function unwrapKey(format, wrappedKey, unwrappingKey, unwrapAlgorithm, unwrappedKeyAlgorithm, extractable, keyUsages) {
    const params = normalize('decrypt', unwrapAlgorithm);
    const input = bytesOf(wrappedKey, 'unwrapKey');
    const s = useKey(unwrappingKey, params, 'unwrapKey');
    const bytes = cipher(false, params, s, input);
    let keyData = bytes;
    if (format === 'jwk') {
      try {
        keyData = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
      } catch (_) {
        throw dom('the unwrapped key is not a JSON Web Key', 'DataError');
      }
    }
    return importKey(format, keyData, unwrappedKeyAlgorithm, extractable, keyUsages);
  }

  function digest(algorithm, data) {
    const params = normalize('digest', algorithm);
    return buffer(call(native.digest, params.name, bytesOf(data, 'digest')));
  }

  // ------------------------------------------------------------ the globals
  // Every method runs its checks inside the promise, so all failures are
  // rejections, as the spec's "in parallel" steps make them.
  const promised = (f) => function (...args) {
    return new Promise((resolve) => resolve(f(...args)));
  };
  class SubtleCrypto {
    constructor() { throw new TypeError('Illegal constructor'); }
    get [Symbol.toStringTag]() { return 'SubtleCrypto'; }
  }
  const methods = { digest, importKey, exportKey, generateKey, sign, verify, encrypt, decrypt, deriveBits, deriveKey, wrapKey, unwrapKey };
  for (const [name, f] of Object.entries(methods)) {
    Object.defineProperty(SubtleCrypto.prototype, name, { value: promised(f), writable: true, configurable: true, enumerable: true });
  }
  const subtle = Object.create(SubtleCrypto.prototype);

  const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));
  class Crypto {
    constructor() { throw new TypeError('Illegal constructor'); }
    get subtle() { return subtle; }
    getRandomValues(view) {
      if (!ArrayBuffer.isView(view) || view instanceof Float32Array || view instanceof Float64Array || view instanceof DataView) {
        throw dom('getRandomValues needs an integer typed array', 'TypeMismatchError');
      }
      if (view.byteLength > 65536) throw dom('getRandomValues: more than 65536 bytes', 'QuotaExceededError');
      new Uint8Array(view.buffer, view.byteOffset, view.byteLength).set(native.randomBytes(view.byteLength));
      return view;
    }
    randomUUID() {
      const b = native.randomBytes(16);
      b[6] = (b[6] & 0x0f) | 0x40;
      b[8] = (b[8] & 0x3f) | 0x80;
      const h = Array.from(b, (x) => HEX[x]);
      return `${h.slice(0, 4).join('')}-${h.slice(4, 6).join('')}-${h.slice(6, 8).join('')}-${h.slice(8, 10).join('')}-${h.slice(10).join('')}`;
    }
    get [Symbol.toStringTag]() { return 'Crypto'; }
  }
  define('crypto', Object.create(Crypto.prototype));
  define('Crypto', Crypto);
  define('CryptoKey', CryptoKey);
  define('SubtleCrypto', SubtleCrypto);
});
