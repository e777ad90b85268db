// Serving HTTP on listening descriptors, and draining without failing a request.
//
// Draining follows what we measured (PITFALLS.md): `http.Server.close()` resets keep-alive clients whose
// next request is already on the wire, so nserve only stops accepting (`net.Server.prototype.close`),
// answers every later request with `Connection: close`, and closes a connection only after it has been
// idle for a grace period.
import * as http from 'node:http';
import type { Socket } from 'node:net';
import * as net from 'node:net';
import { httpTimeouts, type LoadedApp, type UpgradeListener } from './app.js';
import type { Config } from './config.js';
import type { Logger } from './logger.js';
import * as native from './native.js';

export interface AppServerOptions {
  log: Logger;
  backlog: number;
  /** How long a keep-alive connection must have been idle before a drain closes it. */
  drainGraceMs: number;
  keepAliveTimeoutMs?: number;
  headersTimeoutMs?: number;
  /** 0: no limit. */
  requestTimeoutMs?: number;
  /** One info line per request: method, path, status, duration. */
  accessLog?: boolean;
  /** Answered by nserve itself: 200 while serving, 503 once draining (load balancers stop routing). */
  healthPath?: string | undefined;
  /** HTTP upgrades (WebSocket) go here; without it they are refused, as Node does. */
  upgrade?: UpgradeListener | undefined;
}

interface ConnState {
  server: AppServer;
  active: number;
  idleSince: number;
}

// Per-connection and per-response state rides on the objects themselves, and the 'close' handlers are
// shared functions, not closures: this is the per-request hot path.
const STATE = Symbol('nserve.connection');
type Tracked<T> = T & { [STATE]?: ConnState };

function onSocketClose(this: Tracked<Socket>): void {
  const st = this[STATE];
  if (st !== undefined) st.server.untrack(this);
}

function onResponseClose(this: Tracked<http.ServerResponse>): void {
  const st = this[STATE];
  if (st !== undefined) st.server.finished(this, st);
}

export interface DrainResult {
  /** Connections that were still open at the deadline and were destroyed. */
  forced: number;
}

export class AppServer {
  requests = 0;
  inFlight = 0;
  private readonly servers = new Map<string, http.Server>();
  private readonly conns = new Set<Tracked<Socket>>();
  private draining = false;
  private readonly responses = new Set<http.ServerResponse>();
  private readonly responseStarted = new WeakMap<http.ServerResponse, bigint>();
  private onConnectionClosed: (() => void) | undefined;
  private readonly listener: http.RequestListener;

  constructor(
    listener: http.RequestListener,
    private readonly options: AppServerOptions,
  ) {
    this.listener = listener;
  }

  /** The server for a loaded app, as the configuration says (single mode and workers alike). */
  static forApp(app: LoadedApp, config: Config, log: Logger): AppServer {
    return new AppServer(app.listener, {
      log,
      backlog: config.backlog,
      drainGraceMs: config.drainGraceMs,
      accessLog: config.accessLog,
      healthPath: config.healthPath,
      upgrade: app.upgrade,
      ...httpTimeouts(app, config),
    });
  }

  get accepting(): number {
    return this.servers.size;
  }

  /** Accept and serve on `fd`, which this server now owns (it is closed when serving on it stops). */
  async serve(key: string, fd: number): Promise<void> {
    if (this.servers.has(key)) {
      native.close(fd);
      return;
    }
    const server = http.createServer({
      keepAliveTimeout: this.options.keepAliveTimeoutMs ?? 5000,
      ...(this.options.headersTimeoutMs === undefined
        ? {}
        : { headersTimeout: this.options.headersTimeoutMs }),
      ...(this.options.requestTimeoutMs === undefined
        ? {}
        : { requestTimeout: this.options.requestTimeoutMs }),
    });
    server.on('connection', (sock: Socket) => this.track(sock));
    server.on('request', (req, res) => this.handle(req, res));
    // An upgraded connection stays tracked: a drain waits for it up to the shutdown timeout.
    if (this.options.upgrade !== undefined) server.on('upgrade', this.options.upgrade);
    server.on('clientError', (err: NodeJS.ErrnoException, sock: Socket) => {
      if (err.code !== 'ECONNRESET' && sock.writable) {
        const status = err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? '408 Request Timeout' : '400 Bad Request';
        sock.end(`HTTP/1.1 ${status}\r\nConnection: close\r\n\r\n`);
        // A slowloris client that never closes its half would sit in FIN-WAIT-2: destroy it.
        setTimeout(() => sock.destroy(), 1000).unref();
      } else sock.destroy();
    });
    this.servers.set(key, server);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      // Node re-issues listen() on the descriptor with this backlog.
      server.listen({ fd, backlog: this.options.backlog }, () => {
        server.off('error', reject);
        resolve();
      });
    });
  }

  /** Stop accepting on one key (or all), without touching open connections or the socket itself. */
  stopAccepting(key?: string): void {
    const keys = key === undefined ? [...this.servers.keys()] : [key];
    for (const k of keys) {
      const server = this.servers.get(k);
      if (server === undefined) continue;
      this.servers.delete(k);
      // net.Server's close, not http.Server's: the latter also closes "idle" keep-alive connections that
      // may already carry the client's next request. It stops accepting at once; its callback would only
      // run once every connection has ended, which is the drain's business, so nobody waits for it.
      net.Server.prototype.close.call(server);
    }
  }

  /**
   * Finish in-flight requests, send `Connection: close` on every later response, close connections
   * idle past the grace, and destroy whatever is left at the deadline.
   */
  async drain(timeoutMs: number): Promise<DrainResult> {
    this.draining = true;
    for (const res of this.responses) if (!res.headersSent) res.shouldKeepAlive = false;
    const deadline = Date.now() + timeoutMs;
    return new Promise<DrainResult>((resolve) => {
      let timer: NodeJS.Timeout | undefined;
      const finish = (forced: number): void => {
        clearInterval(timer);
        this.onConnectionClosed = undefined;
        resolve({ forced });
      };
      // Event-driven: the drain ends the moment the last connection closes (every millisecond of a
      // cluster hot restart's hand-over is a pause for clients); the timer only enforces the idle
      // grace and the deadline.
      this.onConnectionClosed = () => {
        if (this.conns.size === 0) finish(0);
      };
      const tick = (): void => {
        const now = Date.now();
        for (const sock of this.conns) {
          const st = sock[STATE];
          if (st !== undefined && st.active === 0 && now - st.idleSince >= this.options.drainGraceMs)
            sock.destroy();
        }
        if (this.conns.size === 0) {
          finish(0);
        } else if (now >= deadline) {
          const forced = this.conns.size;
          for (const sock of this.conns) sock.destroy();
          finish(forced);
        }
      };
      timer = setInterval(tick, 20);
      tick();
    });
  }

  /** After an abandoned restart: serve normally again. */
  resume(): void {
    this.draining = false;
  }

  private health(res: http.ServerResponse): void {
    const status = this.draining ? 503 : 200;
    if (this.draining) res.shouldKeepAlive = false;
    res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
    res.end(JSON.stringify({ status: this.draining ? 'draining' : 'ok', pid: process.pid }));
  }

  private track(sock: Tracked<Socket>): void {
    sock[STATE] = { server: this, active: 0, idleSince: Date.now() };
    this.conns.add(sock);
    sock.on('close', onSocketClose);
  }

  /** A connection closed (called from the shared 'close' handler). */
  untrack(sock: Tracked<Socket>): void {
    this.conns.delete(sock);
    this.onConnectionClosed?.();
  }

  /** A response ended or was aborted (called from the shared 'close' handler). */
  finished(res: http.ServerResponse, st: ConnState): void {
    this.inFlight--;
    this.responses.delete(res);
    st.active--;
    st.idleSince = Date.now();
    const started = this.responseStarted.get(res);
    if (started !== undefined) {
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      const req = res.req;
      this.options.log.info(
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
  }

  private handle(req: http.IncomingMessage, res: Tracked<http.ServerResponse>): void {
    if (this.options.healthPath !== undefined && req.url?.split('?')[0] === this.options.healthPath) {
      this.health(res);
      return;
    }
    const st = (req.socket as Tracked<Socket>)[STATE];
    this.requests++;
    if (st !== undefined) {
      this.inFlight++;
      st.active++;
      res[STATE] = st;
      this.responses.add(res);
      if (this.options.accessLog === true) this.responseStarted.set(res, process.hrtime.bigint());
      res.on('close', onResponseClose);
    }
    if (this.draining) res.shouldKeepAlive = false;
    try {
      this.listener(req, res);
    } catch (err) {
      this.options.log.error({ err, method: req.method, url: req.url }, 'request handler threw');
      if (!res.headersSent) {
        res.writeHead(500, { 'content-type': 'text/plain', connection: 'close' });
        res.end('Internal Server Error\n');
      } else {
        res.destroy();
      }
    }
  }
}
