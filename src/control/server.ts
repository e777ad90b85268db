// The control server: a small HTTP/JSON API on a unix socket or a TCP port, in the master (cluster mode)
// or the single process, never in a worker. It has its own listening socket and its own http.Server, so
// control requests are never counted as app requests and never reach the app.
//
// Life across a hot restart: the socket is bound close-on-exec, so the exec closes it; the new image binds
// the same address again first thing (a stale unix socket file is removed: connect() to it is refused;
// TCP binds with SO_REUSEADDR) and serves it as soon as it can answer. Requests that arrive in the exec
// window (~100 ms) are refused: `nserve ctl --wait` retries.
import { createHash, timingSafeEqual } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { Socket } from 'node:net';
import type { Config } from '../config.js';
import { errorCode, errorMessage, usageError } from '../errors.js';
import type { Logger } from '../logger.js';
import * as native from '../native.js';
import { claimServerFile, readPidfile, removePidfile } from '../pidfile.js';
import { readStateFile, removeStateFile, writeStateFile } from '../statefile.js';
import type { ControlAnswer, Controller } from '../status.js';
import { VERSION } from '../version.js';
import { type ControlAddress, type ControlConfig, formatControlUrl, type Route, routeFor } from './api.js';

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

/** Compare a presented token with the expected one in constant time (hashes: equal lengths, no length leak). */
export function tokenMatches(expected: string, given: string | undefined): boolean {
  if (given === undefined) return false;
  const a = createHash('sha256').update(expected).digest();
  const b = createHash('sha256').update(given).digest();
  return timingSafeEqual(a, b);
}

/** The token a request presents: `Authorization: Bearer T`, else `?token=T`. */
export function presentedToken(req: http.IncomingMessage, url: URL): string | undefined {
  const header = req.headers.authorization;
  if (header !== undefined) return /^Bearer +(\S+) *$/i.exec(header)?.[1] ?? '';
  return url.searchParams.get('token') ?? undefined;
}

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
    const server = http.createServer({
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
          this.limitedWarn('evicted', 'control: too many connections without a request, dropped the oldest');
        }
      }
    });
    server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
      // A complete request head: answered at once (Connection: close), so no longer counted as waiting.
      waiting.delete(req.socket);
      this.handle(req, res);
    });
    server.on('clientError', (err: NodeJS.ErrnoException, sock: Socket) => {
      // Never log the error object: its rawPacket may hold the request, token included.
      this.limitedWarn('malformed', 'control: malformed request', { code: err.code });
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
        `HTTP/1.1 ${status}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
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
  private limitedWarn(kind: string, msg: string, fields: Record<string, unknown> = {}): void {
    const now = Date.now();
    let w = this.warnings.get(kind);
    if (w === undefined || now - w.since >= WARN_INTERVAL_MS) {
      if (w !== undefined && w.suppressed > 0)
        this.options.log.warn({ suppressed: w.suppressed }, `${msg}: ${w.suppressed} more not logged`);
      w = { since: now, logged: 0, suppressed: 0 };
      this.warnings.set(kind, w);
    }
    if (w.logged < WARNINGS_PER_INTERVAL) {
      w.logged++;
      this.options.log.warn(fields, msg);
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
    const early = this.check(req, url);
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
      const pending = this.dispatch(route, url);
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

  /** Token, path and method, before the body is read. */
  private check(req: http.IncomingMessage, url: URL): Reply | undefined {
    const { log, token } = this.options;
    if (token !== undefined) {
      const given = presentedToken(req, url);
      if (!tokenMatches(token, given)) {
        const reason = given === undefined ? 'no token' : 'wrong token';
        // The path only: the query may carry the (wrong) token.
        log.warn(
          {
            method: req.method,
            path: url.pathname,
            remote: req.socket.remoteAddress ?? 'unix socket',
            reason,
          },
          `control: ${req.method} ${url.pathname} refused: ${reason}`,
        );
        return {
          status: 403,
          body: { error: 'missing or wrong control token', code: 'ERR_NSERVE_CONTROL_TOKEN' },
        };
      }
    }
    const route = routeFor(url.pathname);
    if (route === undefined) {
      return {
        status: 404,
        body: { error: `no such control path: ${url.pathname}`, code: 'ERR_NSERVE_CONTROL_NOT_FOUND' },
      };
    }
    if (req.method !== route.method) {
      return {
        status: 405,
        headers: { allow: route.method },
        body: {
          error: `${url.pathname} takes ${route.method}, not ${req.method}`,
          code: 'ERR_NSERVE_CONTROL_METHOD',
        },
      };
    }
    return undefined;
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
      this.options.log.error({ err }, `control: /metrics failed: ${errorMessage(err)}`);
      send(res, { status: 500, body: { error: errorMessage(err), code: 'ERR_NSERVE_CONTROL_INTERNAL' } });
    }
  }

  private dispatch(route: Route, url: URL): Reply | Promise<Reply> {
    const controller = this.controller!;
    const { log } = this.options;
    try {
      if (route.method === 'GET') {
        if (route.read === 'stats') return { status: 200, body: controller.stats() };
        // (/metrics is answered by sendMetrics)
        if (controller.fds === undefined) {
          return {
            status: 501,
            body: {
              error: 'this server cannot list its descriptors',
              code: 'ERR_NSERVE_CONTROL_UNSUPPORTED',
            },
          };
        }
        return { status: 200, body: controller.fds() };
      }
      const action = route.action;
      if (action === 'stop' || action === 'halt') {
        // A stop may end the process before this answer is written: answer first, act once it is sent.
        if (controller.stats().state === 'stopping') return refused('already stopping');
        log.info({ path: url.pathname }, `control: ${action} requested`);
        return {
          status: 202,
          body: { accepted: true, action, pid: process.pid },
          afterSent: () => {
            const answer = controller.perform(action);
            if (!answer.accepted) log.warn(`control: ${action} refused: ${answer.reason}`);
          },
        };
      }
      if (action === 'reload-certs' && controller.reloadCerts !== undefined) {
        const started = controller.reloadCerts();
        if ('refused' in started) {
          log.warn({ path: url.pathname }, `control: ${action} refused: ${started.refused}`);
          return refused(started.refused);
        }
        log.info({ path: url.pathname }, `control: ${action} accepted`);
        // 200 with the verdict, refused or not: the request was carried out; `ok` says how it went.
        return started.then((report) => ({
          status: 200,
          body: { accepted: true, action, pid: process.pid, ...report },
        }));
      }
      const answer: ControlAnswer = controller.perform(action);
      if (!answer.accepted) {
        log.warn({ path: url.pathname }, `control: ${action} refused: ${answer.reason}`);
        return refused(answer.reason, answer.status);
      }
      log.info(
        { path: url.pathname, ...(answer.restart === undefined ? {} : { restart: answer.restart }) },
        `control: ${action} accepted`,
      );
      const status = action === 'reload-worker-directory' ? 200 : 202;
      return { status, body: { ...answer, action, pid: process.pid } };
    } catch (err) {
      log.error({ err, path: url.pathname }, `control: ${url.pathname} failed: ${errorMessage(err)}`);
      return { status: 500, body: { error: errorMessage(err), code: 'ERR_NSERVE_CONTROL_INTERNAL' } };
    }
  }
}

interface Reply {
  status: number;
  body: unknown;
  headers?: Record<string, string>;
  /** Runs once the answer has been sent. */
  afterSent?: () => void;
}

function send(res: http.ServerResponse, reply: Reply): void {
  const text = `${JSON.stringify(reply.body, null, 2)}\n`;
  res.writeHead(reply.status, {
    ...reply.headers,
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
    connection: 'close',
  });
  res.end(text);
}

function refused(reason: string, status = 409): Reply {
  return { status, body: { accepted: false, error: reason, code: 'ERR_NSERVE_CONTROL_REFUSED' } };
}

function badRequest(error: string): Reply {
  return { status: 400, body: { error, code: 'ERR_NSERVE_CONTROL_BAD_REQUEST' } };
}

function tooLarge(): Reply {
  return badRequest(`request body too large (control requests take at most ${MAX_BODY_BYTES} bytes)`);
}

// ── the control plane of one server process: control server + state file ──────────────────────────────

export interface ControlPlane {
  /** The bound control server, if `--control-url` is set. */
  readonly server: ControlServer | undefined;
  /** Serve the control API and write the state file; called once the server serves (RunContext.onServing). */
  serve(controller: Controller): Promise<void>;
}

/**
 * Bind the control socket at once (so a busy or bad address fails before the app boots), serve it when the
 * server serves, and write the state file then. Both are removed when the process exits (a stop, a fatal
 * error); a hot restart's exec runs no exit handler, so the new image finds and replaces them.
 */
export function openControlPlane(config: Config, log: Logger, startedAt: string): ControlPlane {
  const control: ControlConfig | undefined = config.control;
  const stateFile = config.stateFile;
  // Fail now, before anything binds or the app boots: a directory that is not there, or a file that names a
  // live server (a second server would take it over, and delete it at its stop).
  if (config.pidfile !== undefined)
    claimServerFile({ flag: '--pidfile', file: config.pidfile, readPid: readPidfile }, log);
  if (stateFile !== undefined)
    claimServerFile({ flag: '--state', file: stateFile, readPid: (f) => readStateFile(f)?.pid }, log);
  const server =
    control === undefined
      ? undefined
      : ControlServer.bind({ address: control.address, token: control.token, log });
  process.once('exit', () => {
    server?.removeSocketFile();
    // Only what still names this process (a crashed start leaves nothing stale behind).
    if (stateFile !== undefined) removeStateFile(stateFile);
    if (config.pidfile !== undefined) removePidfile(config.pidfile);
  });
  return {
    server,
    async serve(controller: Controller): Promise<void> {
      if (server !== undefined) await server.serve(controller);
      if (stateFile !== undefined) {
        writeStateFile(stateFile, {
          version: 1,
          pid: process.pid,
          ...(server === undefined ? {} : { controlUrl: server.url }),
          ...(control?.token === undefined ? {} : { controlToken: control.token }),
          startedAt,
          nserve: VERSION,
        });
      }
      if (server !== undefined) {
        // Logged last: once this line is out, the socket answers and the state file names it.
        log.info(
          { url: server.url, auth: control?.token !== undefined, state: stateFile },
          'control server listening',
        );
      }
    },
  };
}
