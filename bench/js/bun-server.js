// The same handler under Bun.serve.
import app from './hello.js';

Bun.serve({ hostname: '127.0.0.1', port: Number(process.env.PORT), fetch: app.fetch });
