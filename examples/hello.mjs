// A plain Node request listener: `nserve start examples/hello.mjs`
export default function hello(req, res) {
  res.setHeader('content-type', 'application/json');
  res.end(JSON.stringify({ hello: 'world', pid: process.pid, path: req.url }));
}
