// What the server does around one request besides calling the app: the health path's answer, the access
// log line, the line about a handler that threw, and the warning about socket.io's polling handshake
// under --balance kernel.
import type * as http from 'node:http';
import { logEvent } from '../log/events.js';
import type { Logger } from '../log/logger.js';

/** The health path: 503 while draining or unready (--shutdown-delay), so load balancers stop routing here. */
export function answerHealth(
  res: http.ServerResponse,
  state: { draining: boolean; notReady: boolean },
): void {
  const down = state.draining || state.notReady;
  if (state.draining) res.shouldKeepAlive = false;
  res.writeHead(down ? 503 : 200, { 'content-type': 'application/json', 'cache-control': 'no-store' });
  res.end(JSON.stringify({ status: down ? 'draining' : 'ok', pid: process.pid }));
}

/** One access log line for a finished response (`started`: process.hrtime.bigint() at its start). */
export function logAccess(log: Logger, res: http.ServerResponse, started: bigint): void {
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  const req = res.req;
  logEvent(
    log,
    'http.request.done',
    {
      method: req.method,
      path: req.url,
      status: res.statusCode,
      ms: Math.round(ms * 100) / 100,
      finished: res.writableFinished,
    },
    'request',
  );
}

/** The app's handler threw (the caller answers 500, or closes a response already begun). */
export function logHandlerThrew(log: Logger, req: http.IncomingMessage, err: unknown): void {
  logEvent(log, 'app.handler.threw', { err, method: req.method, url: req.url }, 'request handler threw');
}

/**
 * With the kernel's hash each new connection lands on any worker, and the polls after a socket.io
 * handshake answer `400 Session ID unknown` elsewhere. The caller warns once per process.
 */
export function warnPollingHandshake(log: Logger, req: http.IncomingMessage): void {
  logEvent(
    log,
    'balance.polling-handshake',
    { path: req.url?.split('?')[0] },
    "socket.io's polling handshake was seen in cluster mode with --balance kernel: its later requests reach other workers, which do not know the session (400 Session ID unknown); start with --balance ip-hash (docs/balancing.md)",
  );
}
