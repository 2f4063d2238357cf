// A JWT-protected API on bext: `jose` verifies the bearer token with Web
// Crypto (crypto.subtle), against the public keys in env.JWKS (a JSON Web
// Key Set; RS256, ES256 and EdDSA keys here), for the issuer and audience
// in env.ISSUER and env.AUDIENCE.
import { createLocalJWKSet, jwtVerify, errors } from 'jose';

let keys = null;
let keysFrom = null;

function keySet(env) {
  if (keysFrom !== env.JWKS) {
    keys = createLocalJWKSet(JSON.parse(env.JWKS));
    keysFrom = env.JWKS;
  }
  return keys;
}

const json = (body, status = 200) => Response.json(body, { status });

export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    if (url.pathname !== '/me') return json({ error: 'no route' }, 404);
    const auth = request.headers.get('authorization') || '';
    const token = auth.startsWith('Bearer ') ? auth.slice(7) : null;
    if (!token) return json({ error: 'a bearer token is needed' }, 401);
    try {
      const { payload, protectedHeader } = await jwtVerify(token, keySet(env), {
        issuer: env.ISSUER,
        audience: env.AUDIENCE,
        algorithms: ['RS256', 'ES256', 'EdDSA'],
      });
      return json({ sub: payload.sub, alg: protectedHeader.alg, kid: protectedHeader.kid });
    } catch (e) {
      if (e instanceof errors.JOSEError) return json({ error: e.code }, 401);
      throw e;
    }
  },
};
