// A Workers-shaped module (the file named by APP) under node:http, the way
// a small adapter serves one on Node 20: each request becomes a Request,
// fetch(request, env, ctx) runs with env from the process environment, and
// the Response's body is streamed out chunk by chunk, waiting for the
// socket to drain when it is full.
import http from 'node:http';
import { once } from 'node:events';
import { resolve } from 'node:path';
import { Readable } from 'node:stream';
import { pathToFileURL } from 'node:url';

const { default: app } = await import(pathToFileURL(resolve(process.env.APP)).href);
const ctx = { waitUntil() {}, passThroughOnException() {} };

async function serve(req, res) {
  const headers = new Headers();
  for (let i = 0; i < req.rawHeaders.length; i += 2) headers.append(req.rawHeaders[i], req.rawHeaders[i + 1]);
  const init = { method: req.method, headers };
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    init.body = Readable.toWeb(req);
    init.duplex = 'half';
  }
  const response = await app.fetch(new Request(`http://${req.headers.host}${req.url}`, init), process.env, ctx);
  const out = [];
  for (const [name, value] of response.headers) if (name !== 'set-cookie') out.push(name, value);
  for (const cookie of response.headers.getSetCookie()) out.push('set-cookie', cookie);
  res.writeHead(response.status, out);
  if (response.body) {
    for await (const chunk of response.body) {
      if (!res.write(chunk)) await once(res, 'drain');
    }
  }
  res.end();
}

http
  .createServer((req, res) => {
    serve(req, res).catch((error) => {
      console.error(error);
      if (!res.headersSent) res.writeHead(500);
      res.end();
    });
  })
  .listen(Number(process.env.PORT), '127.0.0.1');
