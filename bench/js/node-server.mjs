// The same answer from node:http.
import http from 'node:http';

http
  .createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain;charset=UTF-8' });
    res.end('Hello, World!');
  })
  .listen(Number(process.env.PORT), '127.0.0.1');
