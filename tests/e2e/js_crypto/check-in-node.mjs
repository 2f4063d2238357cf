// Runs app.js under Node's own Web Crypto and prints each route's answer:
// how the values js_crypto.rs expects were cross-checked against another
// implementation (`node check-in-node.mjs`).
import { readFileSync } from 'node:fs';
const app = (await import('./app.js')).default;
const vectors = readFileSync(new URL('./node-vectors.json', import.meta.url), 'utf8');
for (const [path, body] of [['/kat'], ['/round-trips'], ['/node', vectors], ['/errors']]) {
  const res = await app.fetch(new Request(`http://check${path}`, body ? { method: 'POST', body } : {}));
  console.log(path, JSON.stringify(await res.json(), null, 1));
}
