// The control server: a small HTTP/JSON API on a unix socket or a TCP port, in the master (cluster mode)
// or the single process, never in a worker. It has its own listening socket and its own http.Server, so
// control requests are never counted as app requests and never reach the app.
//
// Life across a hot restart: the socket is bound close-on-exec, so the exec closes it; the new image binds
// the same address again first thing (a stale unix socket file is removed: connect() to it is refused;
// TCP binds with SO_REUSEADDR) and serves it as soon as it can answer. Requests that arrive in the exec
// window (~100 ms) are refused: `nserve ctl --wait` retries.
//
// By role: the answers (token, route, actions) are control/answers.ts; the control plane (this server plus
// the state file and pidfile) is control/plane.ts.
import * as fs from 'node:fs';
import type * as http from 'node:http';
import type { Socket } from 'node:net';
import { isDashboardPath } from '../dashboard/paths.js';
import type { Dashboard } from '../dashboard/routes.js';
import { errorCode, errorMessage, usageError } from '../errors.js';
import { type EventCode, logEvent } from '../log/events.js';
import type { Logger } from '../log/logger.js';
import * as native from '../native/index.js';
import { answerRoute, badRequest, checkRequest, type Reply, send } from './answers.js';
import { CONTROL_HEADER, CONTROL_PROTOCOL, type ControlAddress, formatControlUrl } from './api.js';
import { routeFor } from './endpoints.js';
import type { Controller } from './status.js';

export { presentedToken, tokenMatches } from './answers.js';

/** Control requests carry no body; a small one (`{}`) is read and ignored. */
export const MAX_BODY_BYTES = 4096;
/** Request line + headers. */
export const MAX_HEADER_BYTES = 8192;
// Any local user can reach a TCP control port. Connections that have not sent a whole request head are
// bounded in number and time, so an operator can always get in: a client sends its request at once.
/** Connections without a complete request head; past this, the oldest is dropped. */
export const MAX_WAITING_CONNECTIONS = 64;
/** Silence on a connection for this long drops it. */
export const IDLE_TIMEOUT_MS = 2000;
/** The request head must arrive within this (slowloris: one byte a second is not idle). */
export const HEADERS_TIMEOUT_MS = 2000;
export const REQUEST_TIMEOUT_MS = 5000;
const WARN_INTERVAL_MS = 10_000;
const WARNINGS_PER_INTERVAL = 5;

export interface ControlServerOptions {
  address: ControlAddress;
  token: string | undefined;
  log: Logger;
}

export class ControlServer {
  private controller: Controller | undefined;
  private readonly warnings = new Map<string, { since: number; logged: number; suppressed: number }>();
  /** The unix socket file we created (device + inode), so we never remove a newer server's socket. */
  private readonly socketFile: { path: string; dev: number; ino: number } | undefined;
  /**
   * The read-only dashboard under /dashboard (dashboard/routes.ts): its own auth, headers and routes.
   * Loaded at the first dashboard request (its page alone is 10 KB of code): a server whose dashboard
   * nobody opens never loads it. Its state (samples, used login URLs) starts with that request, as the
   * first sample always did.
   */
  private dashboard: Promise<Dashboard> | undefined;

  private constructor(
    readonly fd: number,
    readonly url: string,
    private readonly options: ControlServerOptions,
  ) {
    if (options.address.kind === 'unix') {
      const st = fs.statSync(options.address.path);
      this.socketFile = { path: options.address.path, dev: st.dev, ino: st.ino };
    }
  }

  /** Bind now (fail fast, before the app boots); serve with `serve()` once there is a controller. */
  static bind(options: ControlServerOptions): ControlServer {
    const { address } = options;
    let fd: number;
    try {
      fd =
        address.kind === 'unix'
          ? native.listen({ family: 'unix', path: address.path, mode: address.mode, backlog: 64 })
          : native.listen({ family: address.family, host: address.host, port: address.port, backlog: 64 });
    } catch (err) {
      const url = formatControlUrl(address);
      if (errorCode(err) === 'EADDRINUSE')
        throw usageError('ERR_NSERVE_ADDRESS_IN_USE', `control URL ${url} is in use (another server?)`, err);
      throw usageError('ERR_NSERVE_BIND', `cannot listen on control URL ${url}: ${errorMessage(err)}`, err);
    }
    const local = native.localAddress(fd);
    const url =
      address.kind === 'tcp' && local.family !== 'unix'
        ? formatControlUrl({ ...address, port: local.port })
        : formatControlUrl(address);
    return new ControlServer(fd, url, options);
  }

  async serve(controller: Controller): Promise<void> {
    this.controller = controller;
    // getBuiltinModule, not an ES import of node:http: see server/create.ts.
    const server = process.getBuiltinModule('node:http').createServer({
      maxHeaderSize: MAX_HEADER_BYTES,
      headersTimeout: HEADERS_TIMEOUT_MS,
      requestTimeout: REQUEST_TIMEOUT_MS,
      // Node checks both timeouts only this often (30 s by default: a slowloris client held a slot that long).
      connectionsCheckingInterval: 250,
      keepAliveTimeout: 500,
    });
    // No server.maxConnections: Node would refuse every new connection once the cap is reached, so 32 idle
    // connections from any local user locked the operator out. The cap below evicts the oldest waiting one.
    const waiting = new Set<Socket>();
    server.on('connection', (sock: Socket) => {
      waiting.add(sock);
      sock.once('close', () => waiting.delete(sock));
      // A connection that sends nothing for this long is dropped (destroyed: no FIN-WAIT left behind).
      sock.setTimeout(IDLE_TIMEOUT_MS, () => sock.destroy());
      if (waiting.size > MAX_WAITING_CONNECTIONS) {
        const oldest = waiting.values().next().value;
        if (oldest !== undefined) {
          waiting.delete(oldest);
          oldest.destroy();
          this.limitedWarn(
            'control.connection.evicted',
            'control: too many connections without a request, dropped the oldest',
          );
        }
      }
    });
    server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
      // A complete request head: answered at once (Connection: close), so no longer counted as waiting.
      waiting.delete(req.socket);
      // The one mark of every answer (JSON or metrics, any status): ctl refuses an answer without it.
      res.setHeader(CONTROL_HEADER, CONTROL_PROTOCOL);
      this.handle(req, res);
    });
    server.on('clientError', (err: NodeJS.ErrnoException, sock: Socket) => {
      // Never log the error object: its rawPacket may hold the request, token included.
      this.limitedWarn('control.request.malformed', 'control: malformed request', { code: err.code });
      if (err.code === 'ECONNRESET' || !sock.writable) {
        sock.destroy();
        return;
      }
      const timedOut = err.code === 'ERR_HTTP_REQUEST_TIMEOUT';
      const body = JSON.stringify({
        error: timedOut ? 'request not received in time' : `malformed request (${err.code ?? 'parse error'})`,
        code: 'ERR_NSERVE_CONTROL_BAD_REQUEST',
      });
      const status = timedOut ? '408 Request Timeout' : '400 Bad Request';
      // Answer, then destroy: end() alone left the socket open until the client chose to close it.
      sock.end(
        `HTTP/1.1 ${status}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n${CONTROL_HEADER}: ${CONTROL_PROTOCOL}\r\nConnection: close\r\n\r\n${body}`,
      );
      setTimeout(() => sock.destroy(), 200).unref();
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ fd: this.fd, backlog: 64 }, () => {
        server.off('error', reject);
        resolve();
      });
    });
  }

  /** Warnings any client can trigger: at most a few per interval, then one line counting the rest. */
  private limitedWarn(kind: EventCode, msg: string, fields: Record<string, unknown> = {}): void {
    const now = Date.now();
    let w = this.warnings.get(kind);
    if (w === undefined || now - w.since >= WARN_INTERVAL_MS) {
      if (w !== undefined && w.suppressed > 0)
        logEvent(
          this.options.log,
          'control.warnings.suppressed',
          { of: kind, suppressed: w.suppressed },
          `${msg}: ${w.suppressed} more not logged`,
        );
      w = { since: now, logged: 0, suppressed: 0 };
      this.warnings.set(kind, w);
    }
    if (w.logged < WARNINGS_PER_INTERVAL) {
      w.logged++;
      logEvent(this.options.log, kind, fields, msg);
    } else {
      w.suppressed++;
    }
  }

  /** Remove our socket file (if it is still ours). Synchronous: runs from process 'exit'. */
  removeSocketFile(): void {
    const f = this.socketFile;
    if (f === undefined) return;
    try {
      const st = fs.statSync(f.path);
      if (st.dev === f.dev && st.ino === f.ino) fs.unlinkSync(f.path);
    } catch {
      // already gone
    }
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    res.shouldKeepAlive = false;
    let url: URL;
    try {
      url = new URL(req.url ?? '/', 'http://control.invalid');
    } catch {
      send(res, badRequest('malformed request target'));
      return;
    }
    if (isDashboardPath(url.pathname)) {
      void this.serveDashboard(req, res, url);
      return;
    }
    const early = checkRequest(req, url, this.options);
    if (early !== undefined) {
      send(res, early);
      return;
    }
    const declared = Number(req.headers['content-length'] ?? 0);
    if (!Number.isFinite(declared) || declared > MAX_BODY_BYTES) {
      send(res, tooLarge());
      return;
    }
    let size = 0;
    let answered = false;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES && !answered) {
        answered = true;
        req.pause();
        send(res, tooLarge());
      }
    });
    req.on('end', () => {
      if (answered) return;
      answered = true;
      const route = routeFor(url.pathname)!;
      if (route.method === 'GET' && route.read === 'metrics') {
        void this.sendMetrics(res);
        return;
      }
      const pending = answerRoute(this.controller!, this.options.log, route, url);
      if (pending instanceof Promise) {
        // reload-certs answers with the workers' verdict.
        pending.then(
          (reply) => send(res, reply),
          (err: unknown) =>
            send(res, {
              status: 500,
              body: { error: errorMessage(err), code: 'ERR_NSERVE_CONTROL_INTERNAL' },
            }),
        );
        return;
      }
      const reply = pending;
      send(res, reply);
      if (reply.afterSent !== undefined) {
        // Act once the answer is out (or the client gone): a stop may end the process.
        let done = false;
        const act = (): void => {
          if (done) return;
          done = true;
          reply.afterSent?.();
        };
        res.once('finish', act);
        res.once('close', act);
      }
    });
  }

  /** The dashboard, loaded at its first request; a failure (a poll's stats: EMFILE, say) is a 500. */
  private async serveDashboard(req: http.IncomingMessage, res: http.ServerResponse, url: URL): Promise<void> {
    try {
      (await this.openDashboard()).handle(req, res, url, () => this.controller!.stats());
    } catch (err) {
      // A poll must never take the server down (stats can throw EMFILE out of descriptors): a 500.
      logEvent(
        this.options.log,
        'control.action.failed',
        { err },
        `control: dashboard failed: ${errorMessage(err)}`,
      );
      if (!res.headersSent)
        send(res, { status: 500, body: { error: errorMessage(err), code: 'ERR_NSERVE_CONTROL_INTERNAL' } });
      else res.destroy();
    }
  }

  private openDashboard(): Promise<Dashboard> {
    this.dashboard ??= import('../dashboard/routes.js').then(
      ({ Dashboard }) =>
        new Dashboard({
          token: this.options.token,
          tcp: this.options.address.kind === 'tcp',
          log: this.options.log,
        }),
      (err: unknown) => {
        this.dashboard = undefined; // the next request tries again
        throw err;
      },
    );
    return this.dashboard;
  }

  /** GET /metrics: text, not JSON, and asynchronous (the workers are asked). */
  private async sendMetrics(res: http.ServerResponse): Promise<void> {
    const render = this.controller?.metrics;
    if (render === undefined) {
      send(res, {
        status: 501,
        body: { error: 'metrics are not enabled', code: 'ERR_NSERVE_CONTROL_UNSUPPORTED' },
      });
      return;
    }
    try {
      const { text, contentType } = await render();
      res.writeHead(200, {
        'content-type': contentType,
        'content-length': Buffer.byteLength(text),
        'cache-control': 'no-store',
        connection: 'close',
      });
      res.end(text);
    } catch (err) {
      logEvent(
        this.options.log,
        'control.metrics.failed',
        { err },
        `control: /metrics failed: ${errorMessage(err)}`,
      );
      send(res, { status: 500, body: { error: errorMessage(err), code: 'ERR_NSERVE_CONTROL_INTERNAL' } });
    }
  }
}

function tooLarge(): Reply {
  return badRequest(`request body too large (control requests take at most ${MAX_BODY_BYTES} bytes)`);
}
