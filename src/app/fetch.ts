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
  // Watched from the start: the client may go away while the app is still answering.
  let open = true;
  let onClose = (): void => {};
  res.once('close', () => {
    open = false;
    onClose();
  });
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
    response.body?.cancel().catch(() => {});
    res.end();
    return;
  }
  // Once the response closes (the client went away, or a drain ended an event stream) the app's stream is
  // cancelled: its cancel() runs (an event stream's timer stops), and nothing waits for a 'drain' that
  // cannot come while the stream goes on queueing chunks nobody reads.
  const reader = response.body.getReader();
  onClose = () => void reader.cancel().catch(() => {});
  if (!open) onClose();
  for (;;) {
    const { done, value } = await reader.read();
    if (done || !open) break;
    if (!res.write(value) && open) await drainOrClose(res);
  }
  if (open) res.end();
}

/** Resolves at the response's next 'drain', or its 'close' (after which no 'drain' comes). */
function drainOrClose(res: ServerResponse): Promise<void> {
  return new Promise<void>((resolve) => {
    const done = (): void => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.once('drain', done);
    res.once('close', done);
  });
}
