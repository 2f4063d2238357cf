// Makes node-vectors.json: keys and signatures/ciphertexts produced by
// Node's own Web Crypto (OpenSSL), which bext's crypto.subtle must accept.
// Run with `node make-vectors.mjs > node-vectors.json`; the committed file
// is what the e2e test uses (regenerating gives new random keys, which is
// fine).
const { subtle } = globalThis.crypto;
const enc = (s) => new TextEncoder().encode(s);
const b64 = (b) => Buffer.from(b).toString('base64');
const message = 'signed by node webcrypto';
const out = { message, vectors: [] };

async function pair(algorithm, usages) {
  return subtle.generateKey(algorithm, true, usages);
}
for (const [alg, params] of [
  [{ name: 'RSASSA-PKCS1-v1_5', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' }, { name: 'RSASSA-PKCS1-v1_5' }],
  [{ name: 'RSA-PSS', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-384' }, { name: 'RSA-PSS', saltLength: 48 }],
  [{ name: 'ECDSA', namedCurve: 'P-256' }, { name: 'ECDSA', hash: 'SHA-256' }],
  [{ name: 'ECDSA', namedCurve: 'P-384' }, { name: 'ECDSA', hash: 'SHA-384' }],
  [{ name: 'Ed25519' }, { name: 'Ed25519' }],
]) {
  const k = await pair(alg, ['sign', 'verify']);
  const signature = await subtle.sign(params, k.privateKey, enc(message));
  out.vectors.push({
    op: 'verify',
    algorithm: { ...alg, publicExponent: undefined, hash: alg.hash },
    params,
    spki: b64(await subtle.exportKey('spki', k.publicKey)),
    jwk: await subtle.exportKey('jwk', k.publicKey),
    pkcs8: b64(await subtle.exportKey('pkcs8', k.privateKey)),
    signature: b64(signature),
  });
}
const oaep = await pair({ name: 'RSA-OAEP', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' }, ['encrypt', 'decrypt']);
out.vectors.push({
  op: 'decrypt',
  algorithm: { name: 'RSA-OAEP', hash: 'SHA-256' },
  params: { name: 'RSA-OAEP' },
  pkcs8: b64(await subtle.exportKey('pkcs8', oaep.privateKey)),
  jwk: await subtle.exportKey('jwk', oaep.privateKey),
  ciphertext: b64(await subtle.encrypt({ name: 'RSA-OAEP' }, oaep.publicKey, enc(message))),
});
process.stdout.write(JSON.stringify(out, null, 1) + '\n');
