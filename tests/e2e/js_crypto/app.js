// The Web Crypto test app (tests/e2e/js_crypto.rs). Each route answers
// JSON the Rust test checks against published vectors. It also runs under
// Node (`node check-in-node.mjs`), which is how the expected values were
// cross-checked against another implementation.
const { subtle } = crypto;
const enc = (s) => new TextEncoder().encode(s);
const hex = (b) => Array.from(new Uint8Array(b), (x) => x.toString(16).padStart(2, '0')).join('');
const unhex = (s) => new Uint8Array(s.match(/../g)?.map((h) => parseInt(h, 16)) ?? []);
const b64 = (s) => Uint8Array.from(atob(s), (c) => c.charCodeAt(0));
const b64url = (b) => btoa(String.fromCharCode(...new Uint8Array(b))).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
const json = (v) => new Response(JSON.stringify(v), { headers: { 'content-type': 'application/json' } });

// Known answers: RFC 4231, RFC 6070, RFC 7914, RFC 5869, the GCM spec's
// (NIST) cases, SP 800-38A, RFC 8032.
async function kat() {
  const out = {};
  const hmac = async (key, data, hash) => {
    const k = await subtle.importKey('raw', key, { name: 'HMAC', hash }, false, ['sign']);
    return hex(await subtle.sign('HMAC', k, data));
  };
  out.rfc4231_1_sha256 = await hmac(unhex('0b'.repeat(20)), enc('Hi There'), 'SHA-256');
  out.rfc4231_1_sha512 = await hmac(unhex('0b'.repeat(20)), enc('Hi There'), 'SHA-512');
  out.rfc4231_6_sha256 = await hmac(unhex('aa'.repeat(131)), enc('Test Using Larger Than Block-Size Key - Hash Key First'), 'SHA-256');

  const pbkdf2 = async (password, salt, iterations, hash, bits) => {
    const k = await subtle.importKey('raw', enc(password), 'PBKDF2', false, ['deriveBits']);
    return hex(await subtle.deriveBits({ name: 'PBKDF2', salt: enc(salt), iterations, hash }, k, bits));
  };
  out.rfc6070_1 = await pbkdf2('password', 'salt', 1, 'SHA-1', 160);
  out.rfc6070_2 = await pbkdf2('password', 'salt', 2, 'SHA-1', 160);
  out.rfc6070_4096 = await pbkdf2('password', 'salt', 4096, 'SHA-1', 160);
  out.rfc6070_long = await pbkdf2('passwordPASSWORDpassword', 'saltSALTsaltSALTsaltSALTsaltSALTsalt', 4096, 'SHA-1', 200);
  out.rfc7914_sha256 = await pbkdf2('passwd', 'salt', 1, 'SHA-256', 512);

  const hkdf = async (ikm, salt, info, hash, bits) => {
    const k = await subtle.importKey('raw', unhex(ikm), 'HKDF', false, ['deriveBits']);
    return hex(await subtle.deriveBits({ name: 'HKDF', salt: unhex(salt), info: unhex(info), hash }, k, bits));
  };
  out.rfc5869_1 = await hkdf('0b'.repeat(22), '000102030405060708090a0b0c', 'f0f1f2f3f4f5f6f7f8f9', 'SHA-256', 336);
  out.rfc5869_3 = await hkdf('0b'.repeat(22), '', '', 'SHA-256', 336);
  out.rfc5869_4 = await hkdf('0b'.repeat(11), '000102030405060708090a0b0c', 'f0f1f2f3f4f5f6f7f8f9', 'SHA-1', 336);

  const gcm = async (key, iv, plain, aad) => {
    const k = await subtle.importKey('raw', unhex(key), 'AES-GCM', false, ['encrypt', 'decrypt']);
    const params = { name: 'AES-GCM', iv: unhex(iv), ...(aad ? { additionalData: unhex(aad) } : {}) };
    const sealed = await subtle.encrypt(params, k, unhex(plain));
    const opened = await subtle.decrypt(params, k, sealed);
    return `${hex(sealed)} ${hex(opened) === plain}`;
  };
  const P = 'd9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39';
  out.gcm_2 = await gcm('00'.repeat(16), '00'.repeat(12), '00'.repeat(16));
  out.gcm_4 = await gcm('feffe9928665731c6d6a8f9467308308', 'cafebabefacedbaddecaf888', P, 'feedfacedeadbeeffeedfacedeadbeefabaddad2');
  out.gcm_16 = await gcm('feffe9928665731c6d6a8f9467308308'.repeat(2), 'cafebabefacedbaddecaf888', P, 'feedfacedeadbeeffeedfacedeadbeefabaddad2');

  const sp = '6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51';
  const k128 = unhex('2b7e151628aed2a6abf7158809cf4f3c');
  const cbc = await subtle.importKey('raw', k128, 'AES-CBC', false, ['encrypt', 'decrypt']);
  const cbcOut = await subtle.encrypt({ name: 'AES-CBC', iv: unhex('000102030405060708090a0b0c0d0e0f') }, cbc, unhex(sp));
  out.sp800_38a_cbc = hex(cbcOut).slice(0, 64);
  out.cbc_round_trip = hex(await subtle.decrypt({ name: 'AES-CBC', iv: unhex('000102030405060708090a0b0c0d0e0f') }, cbc, cbcOut)) === sp;
  const ctr = await subtle.importKey('raw', k128, 'AES-CTR', false, ['encrypt']);
  out.sp800_38a_ctr = hex(await subtle.encrypt({ name: 'AES-CTR', counter: unhex('f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff'), length: 64 }, ctr, unhex(sp)));

  const ed = async (seed, pub, msg) => {
    const priv = await subtle.importKey('jwk', { kty: 'OKP', crv: 'Ed25519', d: b64url(unhex(seed)), x: b64url(unhex(pub)) }, 'Ed25519', false, ['sign']);
    const sig = await subtle.sign('Ed25519', priv, unhex(msg));
    const pk = await subtle.importKey('raw', unhex(pub), 'Ed25519', true, ['verify']);
    return `${hex(sig)} ${await subtle.verify('Ed25519', pk, sig, unhex(msg))}`;
  };
  out.rfc8032_1 = await ed('9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60', 'd75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a', '');
  out.rfc8032_2 = await ed('4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb', '3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c', '72');
  out.sha384_abc = hex(await subtle.digest('SHA-384', enc('abc')));
  return out;
}

// Sign then verify (and a tampered message refused), each key family
// through every export format and back.
async function roundTrips() {
  const out = {};
  const message = enc('round trip');
  const tampered = enc('round trip!');
  const e = new Uint8Array([1, 0, 1]);
  const signers = [
    ['RSASSA-PKCS1-v1_5', { name: 'RSASSA-PKCS1-v1_5', modulusLength: 2048, publicExponent: e, hash: 'SHA-256' }, { name: 'RSASSA-PKCS1-v1_5' }],
    ['RSA-PSS', { name: 'RSA-PSS', modulusLength: 1024, publicExponent: e, hash: 'SHA-512' }, { name: 'RSA-PSS', saltLength: 20 }],
    ['ECDSA P-256', { name: 'ECDSA', namedCurve: 'P-256' }, { name: 'ECDSA', hash: 'SHA-256' }],
    ['ECDSA P-384', { name: 'ECDSA', namedCurve: 'P-384' }, { name: 'ECDSA', hash: 'SHA-512' }],
    ['Ed25519', { name: 'Ed25519' }, { name: 'Ed25519' }],
  ];
  for (const [label, alg, params] of signers) {
    const { publicKey, privateKey } = await subtle.generateKey(alg, true, ['sign', 'verify']);
    const sig = await subtle.sign(params, privateKey, message);
    const results = [await subtle.verify(params, publicKey, sig, message), await subtle.verify(params, publicKey, sig, tampered)];
    const importAlg = { ...alg };
    for (const fmt of ['spki', 'jwk', ...(label.startsWith('RSA') ? [] : ['raw'])]) {
      const again = await subtle.importKey(fmt, await subtle.exportKey(fmt, publicKey), importAlg, true, ['verify']);
      results.push(await subtle.verify(params, again, sig, message));
    }
    for (const fmt of ['pkcs8', 'jwk']) {
      const again = await subtle.importKey(fmt, await subtle.exportKey(fmt, privateKey), importAlg, false, ['sign']);
      results.push(await subtle.verify(params, publicKey, await subtle.sign(params, again, message), message));
    }
    out[label] = `${results.join(',')} ${publicKey.type}/${privateKey.type} ${publicKey.usages}/${privateKey.usages} ${publicKey.algorithm.modulusLength ?? publicKey.algorithm.namedCurve ?? publicKey.algorithm.name}`;
  }
  const oaep = await subtle.generateKey({ name: 'RSA-OAEP', modulusLength: 1024, publicExponent: e, hash: 'SHA-256' }, true, ['encrypt', 'decrypt']);
  const label = enc('label');
  const sealed = await subtle.encrypt({ name: 'RSA-OAEP', label }, oaep.publicKey, message);
  out['RSA-OAEP'] = new TextDecoder().decode(await subtle.decrypt({ name: 'RSA-OAEP', label }, oaep.privateKey, sealed));
  for (const [name, params] of [
    ['AES-GCM', { name: 'AES-GCM', iv: crypto.getRandomValues(new Uint8Array(12)), additionalData: enc('aad') }],
    ['AES-CBC', { name: 'AES-CBC', iv: crypto.getRandomValues(new Uint8Array(16)) }],
    ['AES-CTR', { name: 'AES-CTR', counter: new Uint8Array(16), length: 32 }],
  ]) {
    const key = await subtle.generateKey({ name, length: 256 }, true, ['encrypt', 'decrypt']);
    const again = await subtle.importKey('jwk', await subtle.exportKey('jwk', key), name, false, ['decrypt']);
    out[name] = new TextDecoder().decode(await subtle.decrypt(params, again, await subtle.encrypt(params, key, message)));
  }
  // wrapKey/unwrapKey: an HMAC key, as a JWK, under AES-GCM.
  const wrapping = await subtle.generateKey({ name: 'AES-GCM', length: 128 }, false, ['wrapKey', 'unwrapKey']);
  const hmacKey = await subtle.generateKey({ name: 'HMAC', hash: 'SHA-256' }, true, ['sign', 'verify']);
  const iv = new Uint8Array(12);
  const wrapped = await subtle.wrapKey('jwk', hmacKey, wrapping, { name: 'AES-GCM', iv });
  const unwrapped = await subtle.unwrapKey('jwk', wrapped, wrapping, { name: 'AES-GCM', iv }, { name: 'HMAC', hash: 'SHA-256' }, false, ['verify']);
  out.wrap = await subtle.verify('HMAC', unwrapped, await subtle.sign('HMAC', hmacKey, message), message);
  // deriveKey: PBKDF2 to AES-GCM, HKDF to HMAC; the same secret twice derives the same key.
  const base = await subtle.importKey('raw', enc('secret'), 'PBKDF2', false, ['deriveKey']);
  const derive = () => subtle.deriveKey({ name: 'PBKDF2', salt: enc('s'), iterations: 1000, hash: 'SHA-256' }, base, { name: 'AES-GCM', length: 256 }, true, ['encrypt']);
  const [d1, d2] = [await derive(), await derive()];
  out.pbkdf2_deriveKey = `${d1.algorithm.name} ${d1.algorithm.length} ${hex(await subtle.exportKey('raw', d1)) === hex(await subtle.exportKey('raw', d2))}`;
  const ikm = await subtle.importKey('raw', enc('ikm'), 'HKDF', false, ['deriveKey']);
  const h = await subtle.deriveKey({ name: 'HKDF', salt: new Uint8Array(0), info: enc('i'), hash: 'SHA-256' }, ikm, { name: 'HMAC', hash: 'SHA-384' }, true, ['sign']);
  out.hkdf_deriveKey = `${h.algorithm.name} ${h.algorithm.hash.name} ${h.algorithm.length}`;
  return out;
}

// Keys and signatures Node's webcrypto made (node-vectors.json), POSTed by
// the test, and the same with one signature byte flipped.
async function fromNode(vectors) {
  const out = [];
  const message = enc(vectors.message);
  for (const v of vectors.vectors) {
    const alg = { ...v.algorithm };
    if (v.op === 'verify') {
      const sig = b64(v.signature);
      const bad = sig.slice();
      bad[bad.length - 1] ^= 1;
      for (const [fmt, data] of [['spki', b64(v.spki)], ['jwk', v.jwk]]) {
        const key = await subtle.importKey(fmt, data, alg, false, ['verify']);
        out.push(`${v.params.name} ${alg.namedCurve ?? alg.hash ?? ''} ${fmt}: ${await subtle.verify(v.params, key, sig, message)} ${await subtle.verify(v.params, key, bad, message)}`);
      }
      // Our signature with Node's private key verifies with Node's public key.
      const priv = await subtle.importKey('pkcs8', b64(v.pkcs8), alg, false, ['sign']);
      const pub = await subtle.importKey('spki', b64(v.spki), alg, false, ['verify']);
      out.push(`${v.params.name} pkcs8 sign: ${await subtle.verify(v.params, pub, await subtle.sign(v.params, priv, message), message)}`);
    } else {
      for (const [fmt, data] of [['pkcs8', b64(v.pkcs8)], ['jwk', v.jwk]]) {
        const key = await subtle.importKey(fmt, data, alg, false, ['decrypt']);
        out.push(`RSA-OAEP ${fmt}: ${new TextDecoder().decode(await subtle.decrypt(v.params, key, b64(v.ciphertext)))}`);
      }
    }
  }
  return out;
}

// What each misuse rejects with (DOMException names, TypeError for
// arguments of the wrong type).
async function errors() {
  const out = {};
  const hmac = await subtle.importKey('raw', enc('k'), { name: 'HMAC', hash: 'SHA-256' }, false, ['sign']);
  const aes = await subtle.importKey('raw', new Uint8Array(16), 'AES-GCM', false, ['encrypt', 'decrypt']);
  const cbc = await subtle.importKey('raw', new Uint8Array(16), 'AES-CBC', false, ['decrypt']);
  const ec = await subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign', 'verify']);
  const cases = {
    sign_with_public_key: () => subtle.sign({ name: 'ECDSA', hash: 'SHA-256' }, ec.publicKey, enc('x')),
    sign_with_other_algorithm: () => subtle.sign({ name: 'ECDSA', hash: 'SHA-256' }, hmac, enc('x')),
    hmac_key_used_to_verify: () => subtle.verify('HMAC', hmac, new Uint8Array(32), enc('x')),
    aes_key_of_15_bytes: () => subtle.importKey('raw', new Uint8Array(15), 'AES-GCM', false, ['encrypt']),
    spki_garbage: () => subtle.importKey('spki', enc('not der'), { name: 'ECDSA', namedCurve: 'P-256' }, false, ['verify']),
    spki_of_other_curve: async () => subtle.importKey('spki', await subtle.exportKey('spki', ec.publicKey), { name: 'ECDSA', namedCurve: 'P-384' }, false, ['verify']),
    jwk_crv_mismatch: async () => subtle.importKey('jwk', { ...(await subtle.exportKey('jwk', ec.publicKey)), crv: 'P-384' }, { name: 'ECDSA', namedCurve: 'P-256' }, false, ['verify']),
    jwk_bad_base64: () => subtle.importKey('jwk', { kty: 'oct', k: 'a*b' }, 'AES-GCM', false, ['encrypt']),
    rsa_raw_import: () => subtle.importKey('raw', new Uint8Array(32), { name: 'RSA-PSS', hash: 'SHA-256' }, false, ['verify']),
    ecdsa_usage_encrypt: () => subtle.importKey('raw', new Uint8Array(65), { name: 'ECDSA', namedCurve: 'P-256' }, false, ['encrypt']),
    private_key_without_usages: () => subtle.generateKey({ name: 'Ed25519' }, false, ['verify']),
    p521: () => subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-521' }, false, ['sign']),
    unknown_algorithm: () => subtle.encrypt({ name: 'AES-XTS' }, aes, enc('x')),
    gcm_tampered: async () => {
      const p = { name: 'AES-GCM', iv: new Uint8Array(12) };
      const c = new Uint8Array(await subtle.encrypt(p, aes, enc('secret')));
      c[0] ^= 1;
      return subtle.decrypt(p, aes, c);
    },
    cbc_bad_padding: () => subtle.decrypt({ name: 'AES-CBC', iv: new Uint8Array(16) }, cbc, new Uint8Array(16)),
    cbc_short_iv: () => subtle.decrypt({ name: 'AES-CBC', iv: new Uint8Array(8) }, cbc, new Uint8Array(16)),
    export_not_extractable: () => subtle.exportKey('raw', aes),
    export_private_as_spki: () => subtle.exportKey('spki', ec.privateKey),
    pbkdf2_bits_not_bytes: async () => subtle.deriveBits({ name: 'PBKDF2', salt: enc('s'), iterations: 1, hash: 'SHA-256' }, await subtle.importKey('raw', enc('p'), 'PBKDF2', false, ['deriveBits']), 12),
    pbkdf2_zero_iterations: async () => subtle.deriveBits({ name: 'PBKDF2', salt: enc('s'), iterations: 0, hash: 'SHA-256' }, await subtle.importKey('raw', enc('p'), 'PBKDF2', false, ['deriveBits']), 256),
    pbkdf2_extractable: () => subtle.importKey('raw', enc('p'), 'PBKDF2', true, ['deriveBits']),
    pbkdf2_over_the_iteration_cap: async () => subtle.deriveBits({ name: 'PBKDF2', salt: enc('s'), iterations: 100001, hash: 'SHA-256' }, await subtle.importKey('raw', enc('p'), 'PBKDF2', false, ['deriveBits']), 256),
    hmac_key_too_long: () => subtle.generateKey({ name: 'HMAC', hash: 'SHA-256', length: 65536 * 8 + 8 }, false, ['sign']),
    curve_name_is_case_sensitive: () => subtle.generateKey({ name: 'ECDSA', namedCurve: 'p-256' }, false, ['sign']),
    digest_of_a_string: () => subtle.digest('SHA-256', 'abc'),
    bad_usage_name: () => subtle.importKey('raw', new Uint8Array(16), 'AES-GCM', false, ['fly']),
  };
  for (const [name, f] of Object.entries(cases)) {
    try {
      await f();
      out[name] = 'resolved';
    } catch (e) {
      out[name] = `${e.name}${e instanceof DOMException ? '' : ' (not a DOMException)'}`;
    }
  }
  // Algorithm names match whatever their case; the key says the canonical one.
  const lower = await subtle.generateKey({ name: 'ecdsa', namedCurve: 'P-256' }, false, ['sign', 'verify']);
  const sig = await subtle.sign({ name: 'EcDsA', hash: 'sha-256' }, lower.privateKey, enc('x'));
  out.names_any_case = `${lower.privateKey.algorithm.name} ${await subtle.verify({ name: 'ECDSA', hash: 'SHA-256' }, lower.publicKey, sig, enc('x'))}`;
  out.verify_short_signature = await subtle.verify({ name: 'ECDSA', hash: 'SHA-256' }, ec.publicKey, new Uint8Array(3), enc('x'));
  out.rejects_not_throws = subtle.digest('MD5', enc('x')).catch(() => {}) instanceof Promise;
  for (const [name, f] of Object.entries({
    random_over_quota: () => crypto.getRandomValues(new Uint8Array(65537)),
    random_float: () => crypto.getRandomValues(new Float64Array(2)),
  })) {
    try { f(); out[name] = 'returned'; } catch (e) { out[name] = e.name; }
  }
  const r = crypto.getRandomValues(new Uint32Array(16384));
  out.random_at_quota = r.length === 16384 && r.some((x) => x !== 0);
  out.uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/.test(crypto.randomUUID()) && crypto.randomUUID() !== crypto.randomUUID();
  out.key_is_opaque = JSON.stringify(Object.keys(hmac)) + ' ' + Object.prototype.toString.call(hmac) + ' ' + (hmac instanceof CryptoKey);
  return out;
}

export default {
  async fetch(request) {
    switch (new URL(request.url).pathname) {
      case '/kat': return json(await kat());
      case '/round-trips': return json(await roundTrips());
      case '/node': return json(await fromNode(await request.json()));
      case '/errors': return json(await errors());
      default: return new Response('not found', { status: 404 });
    }
  },
};
