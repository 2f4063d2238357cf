// An Express server on $PORT, as `npm start` runs it under bext's process runtime.
const express = require('express');
const app = express();
app.get('/', (req, res) => res.send(`express on ${req.headers.host}`));
app.get('/users/:id', (req, res) => res.json({ id: req.params.id, framework: 'express' }));
app.listen(Number(process.env.PORT), '127.0.0.1');
