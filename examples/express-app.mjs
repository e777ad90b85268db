// An express app, served as is: `nserve start examples/express-app.mjs -w 2`
import express from 'express';

const app = express();
app.get('/', (_req, res) => res.json({ hello: 'express', pid: process.pid }));
app.get('/users/:id', (req, res) => res.json({ id: req.params.id }));
export default app;
