// Web-standard fetch handlers (`export default { fetch(request) }`: Hono, itty, …) served as Node's (req, res).
import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import type { FetchHandler } from './index.js';

/** Adapt a web-standard fetch handler to Node's (req, res). */
export function fetchListener(fetch: FetchHandler): RequestListener {
  return (req: IncomingMessage, res: ServerResponse): void => {
    void serveFetch(fetch, req, res).catch((err: unknown) => {
      res.emit('error', err);
    });
  };
}

async function serveFetch(fetch: FetchHandler, req: IncomingMessage, res: ServerResponse): Promise<void> {
  // Over HTTP/2 (an ssl:// bind with alpn=h2) the host is the :authority pseudo-header.
  const authority = req.headers[':authority'];
  const host = req.headers.host ?? (typeof authority === 'string' ? authority : 'localhost');
  const url = new URL(req.url ?? '/', `http://${host}`);
  const headers = new Headers();
  for (const [name, value] of Object.entries(req.headers)) {
    // HTTP/2 pseudo-headers (:method, :path, …) are not headers a Request may carry.
    if (name.startsWith(':')) continue;
    if (value === undefined) continue;
    if (Array.isArray(value)) for (const v of value) headers.append(name, v);
    else headers.set(name, value);
  }
  const method = req.method ?? 'GET';
  const hasBody = method !== 'GET' && method !== 'HEAD';
  const init: RequestInit & { duplex?: 'half' } = { method, headers };
  if (hasBody) {
    init.body = Readable.toWeb(req) as unknown as ReadableStream<Uint8Array>;
    init.duplex = 'half';
  }
  const response = await fetch(new Request(url, init));
  const outHeaders: Record<string, string | string[]> = {};
  response.headers.forEach((value, name) => {
    if (name !== 'set-cookie') outHeaders[name] = value;
  });
  const cookies = response.headers.getSetCookie();
  if (cookies.length > 0) outHeaders['set-cookie'] = cookies;
  // HTTP/2 has no status text (Node warns if given one).
  if (req.httpVersionMajor >= 2) res.writeHead(response.status, outHeaders);
  else res.writeHead(response.status, response.statusText, outHeaders);
  if (response.body === null || method === 'HEAD') {
    res.end();
    return;
  }
  for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
    if (!res.write(chunk)) await new Promise<void>((resolve) => res.once('drain', resolve));
  }
  res.end();
}
