// A web-standard fetch handler (Hono-style): `nserve start examples/fetch.mjs`
export default {
  async fetch(request) {
    const url = new URL(request.url);
    const echo = request.method === 'POST' ? await request.text() : undefined;
    return Response.json({ hello: 'fetch', path: url.pathname, echo, pid: process.pid });
  },
};
