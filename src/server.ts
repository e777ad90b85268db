// Serving HTTP on listening descriptors, and draining without failing a request.
//
// Draining follows what we measured (PITFALLS.md): `http.Server.close()` resets keep-alive clients whose
// next request is already on the wire, so nserve only stops accepting (`net.Server.prototype.close`),
// answers every later request with `Connection: close`, and closes a connection only after it has been
// idle for a grace period.
//
// A drain waits for requests only. Long-lived connections (upgraded sockets, event streams, responses
// the app marked: see drain.ts) are told to go (`announce`) and, after their grace, ended with a clean
// close (FIN after pending writes, never a reset). Responses marked "finish on old code" are waited for
// separately (`finishOnOld`), after the drain, so that a cluster hand-over does not wait for them.
//
// TLS (`ssl://` binds: tls.ts) only changes which server object is made for a bind (https, or http2 with
// an HTTP/1.1 fallback) and what is tracked: a connection is tracked as its TLS socket once the
// handshake is done, and counted as "handshaking" until then, so a drain waits for it. An app that
// terminates TLS itself (listen-compat with an https.Server) keeps its own server: nserve hands it the
// connections it accepts and serves the requests that come out of it.
import * as http from 'node:http';
import type * as http2 from 'node:http2';
import * as http2Module from 'node:http2';
import * as https from 'node:https';
import type { Socket } from 'node:net';
import * as net from 'node:net';
import * as tls from 'node:tls';
import { httpTimeouts, type LoadedApp, type UpgradeListener } from './app.js';
import type { Config } from './config.js';
import { announceDrain, CLASS, type DrainInfo, type MarkedClass, retractDrain } from './drain.js';
import { errorMessage, usageError } from './errors.js';
import type { Logger } from './logger.js';
import { REQUESTS, STARTED, type Timed } from './metrics/requests.js';
import * as native from './native.js';
import { type CertVerdict, refusesPeer, type TlsBindOptions, TlsBinds } from './tls.js';

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
  /** The certificates of `ssl://` binds (by bind URI); plain binds are served over HTTP. */
  tls?: TlsBinds | undefined;
  /** Listen-compat with an app's own TLS server (https/http2): it terminates TLS, nserve feeds it. */
  external?: tls.Server | undefined;
}

/** The bind URI of a slot key (`<uri>#<slot>`). */
function bindOf(key: string): string {
  const i = key.lastIndexOf('#');
  return i === -1 ? key : key.slice(0, i);
}

interface ConnState {
  server: AppServer;
  /** The tracked socket itself (an HTTP/2 response's `socket` is a proxy that refuses destroy/end). */
  socket: Socket;
  active: number;
  idleSince: number;
  /** Upgraded (WebSocket): no longer HTTP; long-lived. */
  upgraded: boolean;
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
  /** Long-lived connections open when the drain began (they were told to go). */
  asked: number;
  /** Of those, closed before the grace ran out (by the app or the client). */
  closedThemselves: number;
  /** Ended by nserve after the grace, with a clean close. */
  ended: number;
}

/** What counts as long-lived (told to go, ended after a grace) or may finish on old code. */
function responseClass(res: http.ServerResponse): 'request' | MarkedClass {
  const marked = (res as { [CLASS]?: MarkedClass })[CLASS];
  if (marked !== undefined) return marked;
  const type = res.getHeader('content-type') ?? headerFromRaw(res, 'content-type');
  return typeof type === 'string' && type.toLowerCase().startsWith('text/event-stream')
    ? 'long-lived'
    : 'request';
}

/** A header passed straight to writeHead() is only in the serialized head (getHeader() misses it). */
function headerFromRaw(res: http.ServerResponse, name: string): string | undefined {
  const head = (res as { _header?: unknown })._header;
  if (typeof head !== 'string') return undefined;
  const m = new RegExp(`\r\n${name}:[ \t]*([^\r\n]*)`, 'i').exec(head);
  return m?.[1];
}

/** A TCP connection whose TLS handshake is not done yet (raw socket → when it arrived). */
type Handshakes = Map<Socket, number>;

/** The socket of the connection a response goes out on (its TLS socket for HTTP/2 streams). */
function connectionOf(res: http.ServerResponse): Socket | null {
  return (res as Tracked<http.ServerResponse>)[STATE]?.socket ?? res.socket;
}

export class AppServer {
  requests = 0;
  inFlight = 0;
  /** The server accepting on each slot key (an http/https/http2 server, or a feed into `external`). */
  private readonly servers = new Map<string, net.Server>();
  /** The listening descriptor each server accepts on (closed with it). */
  private readonly fds = new Map<string, number>();
  private readonly conns = new Set<Tracked<Socket>>();
  private draining = false;
  private announced = false;
  private notReady = false;
  /** Serve connections adopted at a graceful stop, per bind (its listening servers are closed by then). */
  private readonly spares = new Map<string, net.Server>();
  private readonly handshakes: Handshakes = new Map();
  private readonly sessions = new Set<http2.ServerHttp2Session>();
  private askedLongLived = 0;
  private readonly responses = new Set<http.ServerResponse>();
  private readonly responseStarted = new WeakMap<http.ServerResponse, bigint>();
  private onConnectionClosed: (() => void) | undefined;
  private readonly listener: http.RequestListener;

  constructor(
    listener: http.RequestListener,
    private readonly options: AppServerOptions,
  ) {
    this.listener = listener;
    const external = options.external;
    if (external !== undefined) {
      // The app's own TLS server: its request listeners become the app; nserve's handler counts, drains
      // and calls them, as it does for an http.Server through `listener`.
      const own = external.listeners('request') as http.RequestListener[];
      external.removeAllListeners('request');
      this.listener = (req, res) => {
        for (const l of own) l.call(external, req, res);
      };
      external.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => this.handle(req, res));
      this.instrument(external, undefined);
      // The app's 'upgrade' listeners answer upgrades themselves: only mark the connection long-lived.
      external.prependListener('upgrade', (_req: http.IncomingMessage, sock: Tracked<Socket>) => {
        const st = sock[STATE];
        if (st !== undefined) st.upgraded = true;
      });
    }
  }

  /** The server for a loaded app, as the configuration says (single mode and workers alike). */
  static forApp(app: LoadedApp, config: Config, log: Logger): AppServer {
    const tlsBinds = new TlsBinds(config.binds);
    if (app.tlsServer !== undefined && tlsBinds.size > 0) {
      throw usageError(
        'ERR_NSERVE_TLS',
        `app ${app.file} terminates TLS itself (https.createServer): bind it with tcp://, not ssl://`,
      );
    }
    return new AppServer(app.listener, {
      log,
      backlog: config.backlog,
      drainGraceMs: config.drainGraceMs,
      accessLog: config.accessLog,
      healthPath: config.healthPath,
      upgrade: app.upgrade,
      ...httpTimeouts(app, config),
      tls: tlsBinds,
      external: app.tlsServer,
    });
  }

  /**
   * Rotation: re-read every `ssl://` bind's certificate and key; new handshakes on the servers of a bind
   * whose files are good use them, open connections are untouched; a bind whose new files are bad keeps
   * serving its old certificate (its verdict says why).
   */
  reloadCerts(): CertVerdict[] {
    const tlsBinds = this.options.tls;
    if (tlsBinds === undefined) return [];
    return tlsBinds.reload((uri, options) => {
      for (const [key, server] of this.servers) {
        if (bindOf(key) === uri && server instanceof tls.Server) server.setSecureContext(options);
      }
    });
  }

  /** The certificate each `ssl://` bind serves now. */
  certificates(): ReturnType<TlsBinds['info']> {
    return this.options.tls?.info() ?? [];
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
    const server = this.createServer(key);
    this.servers.set(key, server);
    this.fds.set(key, fd);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      // Node re-issues listen() on the descriptor with this backlog.
      server.listen({ fd, backlog: this.options.backlog }, () => {
        server.off('error', reject);
        resolve();
      });
    });
  }

  /**
   * Without the native addon (portable single mode): let Node bind and listen. No descriptor is ours,
   * so no hot restart can keep it; a stop closes it.
   */
  async listenOn(key: string, options: net.ListenOptions): Promise<net.AddressInfo | string | null> {
    const server = this.createServer(key);
    this.servers.set(key, server);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ ...options, backlog: this.options.backlog }, () => {
        server.off('error', reject);
        resolve();
      });
    });
    return server.address();
  }

  /** The server for one bind: http, https, http2 (ALPN h2), or a feed into the app's own TLS server. */
  private createServer(key: string): net.Server {
    const external = this.options.external;
    if (external !== undefined) {
      // Connections go to the app's server, which does the handshake with its own options.
      return net.createServer((raw) => external.emit('connection', raw));
    }
    const uri = bindOf(key);
    const tlsOptions = this.options.tls?.serverOptions(uri);
    const bind = this.options.tls?.options(uri);
    const timeouts = {
      keepAliveTimeout: this.options.keepAliveTimeoutMs ?? 5000,
      ...(this.options.headersTimeoutMs === undefined
        ? {}
        : { headersTimeout: this.options.headersTimeoutMs }),
      ...(this.options.requestTimeoutMs === undefined
        ? {}
        : { requestTimeout: this.options.requestTimeoutMs }),
    };
    let server: http.Server | tls.Server;
    if (tlsOptions === undefined || bind === undefined) server = http.createServer(timeouts);
    else if (bind.alpn.includes('h2'))
      server = http2Module.createSecureServer({ ...tlsOptions, allowHTTP1: bind.alpn.includes('http/1.1') });
    else server = https.createServer({ ...tlsOptions, ...timeouts });
    this.instrument(server, bind);
    server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => this.handle(req, res));
    // An upgraded connection stays tracked, as long-lived: a drain tells the app, then ends it.
    const upgrade = this.options.upgrade;
    if (upgrade !== undefined) {
      server.on('upgrade', (req: http.IncomingMessage, sock: Tracked<Socket>, head: Buffer) => {
        const st = sock[STATE];
        if (st !== undefined) st.upgraded = true;
        upgrade(req, sock, head);
      });
    }
    server.on('clientError', (err: NodeJS.ErrnoException, sock: Socket) => {
      if (err.code !== 'ECONNRESET' && sock.writable) {
        const status = err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? '408 Request Timeout' : '400 Bad Request';
        sock.end(`HTTP/1.1 ${status}\r\nConnection: close\r\n\r\n`);
        // A slowloris client that never closes its half would sit in FIN-WAIT-2: destroy it.
        setTimeout(() => sock.destroy(), 1000).unref();
      } else sock.destroy();
    });
    return server;
  }

  /**
   * Connection tracking. Plain HTTP: each accepted socket. TLS: the raw socket counts as handshaking
   * (a drain waits for it, for at most the drain grace), then its TLS socket is tracked.
   */
  private instrument(server: net.Server, bind: TlsBindOptions | undefined): void {
    if (!(server instanceof tls.Server)) {
      server.on('connection', (sock: Socket) => this.track(sock));
      return;
    }
    server.on('connection', (raw: Socket) => {
      this.handshakes.set(raw, Date.now());
      raw.once('close', () => {
        if (this.handshakes.delete(raw)) this.onConnectionClosed?.();
      });
    });
    server.on('secureConnection', (sock: tls.TLSSocket) => {
      // Node keeps the TCP socket under the TLS one as `_parent`.
      const raw = (sock as { _parent?: unknown })._parent;
      if (raw instanceof net.Socket) this.handshakes.delete(raw);
      if (bind !== undefined && refusesPeer(bind, sock)) {
        sock.destroy();
        return;
      }
      this.track(sock);
    });
    server.on('session', (session: http2.ServerHttp2Session) => {
      this.sessions.add(session);
      session.once('close', () => this.sessions.delete(session));
      // A session that begins while draining serves its first stream, then says GOAWAY.
      if (this.draining) session.once('stream', () => session.close());
    });
  }

  /** Stop accepting on one key (or all), without touching open connections or the socket itself. */
  stopAccepting(key?: string): void {
    const keys = key === undefined ? [...this.servers.keys()] : [key];
    for (const k of keys) {
      const server = this.servers.get(k);
      if (server === undefined) continue;
      this.servers.delete(k);
      this.fds.delete(k);
      // net.Server's close, not http.Server's: the latter also closes "idle" keep-alive connections that
      // may already carry the client's next request. It stops accepting at once; its callback would only
      // run once every connection has ended, which is the drain's business, so nobody waits for it.
      net.Server.prototype.close.call(server);
    }
  }

  /** From now on every response says `Connection: close` (keep-alive clients move on as they finish). */
  beginDraining(): void {
    this.draining = true;
    for (const res of this.responses) if (!res.headersSent) res.shouldKeepAlive = false;
    // HTTP/2 has no Connection: close: GOAWAY lets open streams finish and tells the client to move on.
    for (const session of this.sessions) session.close();
  }

  /**
   * A graceful stop: stop accepting, take over every connection queued on each listener and close it
   * (native acceptAndClose: accept until the queue is empty, then close, in one call). Connections
   * queued when the stop began are served; once the last descriptor of a socket is closed, new ones are
   * refused at once instead of waiting in a queue that a close would reset. `owned`: the caller's own
   * copies, closed this way too (single mode); otherwise a copy of each served listener is taken first.
   */
  closeListenersServingQueued(owned?: readonly number[]): void {
    // Which bind each copy serves (TLS or not): the caller's own copies are matched by address.
    const byAddress = new Map<string, string>();
    for (const [key, fd] of this.fds) byAddress.set(JSON.stringify(native.localAddress(fd)), key);
    const copies: [string | undefined, number][] =
      owned === undefined
        ? [...this.fds].map(([key, fd]) => [key, native.dup(fd)])
        : owned.map((fd) => [byAddress.get(JSON.stringify(native.localAddress(fd))), fd]);
    this.stopAccepting();
    for (const [key, fd] of copies) {
      let accepted: number[];
      try {
        accepted = native.acceptAndClose(fd);
      } catch (err) {
        this.options.log.warn({ err, fd }, `taking over queued connections failed: ${errorMessage(err)}`);
        continue;
      }
      for (const c of accepted) this.adoptConnection(c, key ?? '');
    }
  }

  /** Serve a connection accepted elsewhere (acceptAndClose) like one this server accepted. */
  private adoptConnection(fd: number, key: string): void {
    const uri = bindOf(key);
    let spare = this.spares.get(uri);
    if (spare === undefined) {
      spare = this.createServer(key);
      this.spares.set(uri, spare);
    }
    const sock = new net.Socket({ fd, readable: true, writable: true });
    spare.emit('connection', sock);
  }

  /** Long-lived connections open now: upgraded sockets and long-lived responses in progress. */
  longLivedOpen(): number {
    let n = 0;
    for (const sock of this.conns) if (sock[STATE]?.upgraded === true) n++;
    for (const res of this.responses) if (responseClass(res) === 'long-lived') n++;
    return n;
  }

  /** Open connections by kind, for metrics: serving a request, idle keep-alive, long-lived. */
  connectionCounts(): { request: number; idle: number; longLived: number } {
    let request = 0;
    let idle = 0;
    let longLived = 0;
    for (const sock of this.conns) {
      const st = sock[STATE];
      if (st === undefined) continue;
      if (st.upgraded) longLived++;
      else if (st.active > 0) request++;
      else idle++;
    }
    // An event stream is a connection serving a response that never ends: long-lived, not a request.
    for (const res of this.responses) {
      if (responseClass(res) !== 'long-lived') continue;
      longLived++;
      request = Math.max(0, request - 1);
    }
    return { request, idle, longLived };
  }

  /** Tell the app this process drains (drain.ts): it may close its long-lived connections its own way. */
  announce(info: DrainInfo): void {
    if (this.announced) return;
    this.announced = true;
    this.askedLongLived = this.longLivedOpen();
    announceDrain(info, (err) =>
      this.options.log.error({ err }, `an onDrain listener of the app failed: ${errorMessage(err)}`),
    );
  }

  /**
   * Wait (at most `graceMs`) until no long-lived connection is open, while still serving: the app was
   * told to close them; clients that reconnect meanwhile reach this process again.
   */
  async waitLongLived(graceMs: number): Promise<void> {
    const deadline = Date.now() + graceMs;
    while (this.longLivedOpen() > 0 && Date.now() < deadline) await sleep(20);
  }

  /**
   * Stop serving: finish in-flight requests, send `Connection: close` on every later response, close
   * connections idle past the drain grace, tell the app to close long-lived connections and end those
   * still open after `longLivedGraceMs` (cleanly), and destroy whatever is left at the deadline.
   * Responses marked "finish on old code" do not hold the drain up: see `finishOnOld`.
   */
  async drain(
    timeoutMs: number,
    longLivedGraceMs: number,
    reason: DrainInfo['reason'],
  ): Promise<DrainResult> {
    this.beginDraining();
    this.announce({ reason, graceMs: longLivedGraceMs });
    const started = Date.now();
    const deadline = started + timeoutMs;
    const ended = new Set<Socket | http.ServerResponse>();
    let endedCount = 0;
    return new Promise<DrainResult>((resolve) => {
      let timer: NodeJS.Timeout | undefined;
      const finish = (forced: number): void => {
        clearInterval(timer);
        this.onConnectionClosed = undefined;
        const asked = this.askedLongLived;
        resolve({ forced, asked, ended: endedCount, closedThemselves: Math.max(0, asked - endedCount) });
      };
      const blocking = (): Set<Socket> => {
        const out = new Set<Socket>();
        for (const res of this.responses) {
          const cls = responseClass(res);
          const sock = connectionOf(res);
          if (cls === 'request' && sock !== null) out.add(sock);
          else if (cls === 'long-lived' && !ended.has(res) && sock !== null) out.add(sock);
        }
        for (const raw of this.handshakes.keys()) out.add(raw);
        for (const sock of this.conns) {
          const st = sock[STATE];
          if (st === undefined) continue;
          if (ended.has(sock)) continue;
          if (st.upgraded || st.active === 0) out.add(sock);
        }
        return out;
      };
      const endLongLived = (): void => {
        for (const res of this.responses) {
          if (responseClass(res) !== 'long-lived' || ended.has(res)) continue;
          ended.add(res);
          endedCount++;
          // The stream's last chunk, then FIN: the client sees the stream end and reconnects.
          const sock = connectionOf(res);
          res.end(() => sock?.end());
          if (sock !== null) {
            ended.add(sock);
            setTimeout(() => sock.destroy(), 2000).unref();
          }
        }
        for (const sock of this.conns) {
          if (sock[STATE]?.upgraded !== true || ended.has(sock)) continue;
          ended.add(sock);
          endedCount++;
          sock.end(); // FIN after the pending writes; never a reset with unread data
          setTimeout(() => sock.destroy(), 2000).unref();
        }
      };
      // Event-driven: the drain ends the moment the last blocking connection closes (every millisecond
      // of a cluster hot restart's hand-over is a pause for clients); the timer enforces the graces and
      // the deadline.
      const tick = (): void => {
        const now = Date.now();
        if (now - started >= longLivedGraceMs) endLongLived();
        for (const sock of this.conns) {
          const st = sock[STATE];
          if (
            st !== undefined &&
            !st.upgraded &&
            st.active === 0 &&
            now - st.idleSince >= this.options.drainGraceMs
          )
            sock.destroy();
        }
        // A handshake not done within the drain grace is a client that will not send a request.
        for (const [raw, since] of this.handshakes)
          if (now - since >= this.options.drainGraceMs) raw.destroy();
        const left = blocking();
        if (left.size === 0) {
          finish(0);
        } else if (now >= deadline) {
          for (const sock of left) sock.destroy();
          finish(left.size);
        }
      };
      this.onConnectionClosed = () => {
        if (blocking().size === 0) finish(0);
      };
      timer = setInterval(tick, 20);
      tick();
    });
  }

  /** After the drain: wait (bounded) for responses marked "finish on old code"; destroy what is left. */
  async finishOnOld(timeoutMs: number): Promise<number> {
    const deadline = Date.now() + timeoutMs;
    const pending = (): http.ServerResponse[] =>
      [...this.responses].filter((r) => responseClass(r) === 'finish-on-old');
    while (pending().length > 0 && Date.now() < deadline) await sleep(50);
    const left = pending();
    for (const r of left) r.destroy();
    return left.length;
  }

  /** After an abandoned restart: serve normally again. */
  resume(): void {
    this.draining = false;
    this.announced = false;
    retractDrain();
  }

  /** A stop with --shutdown-delay: go on serving, but tell load balancers to stop routing here. */
  unready(): void {
    this.notReady = true;
  }

  private health(res: http.ServerResponse): void {
    const down = this.draining || this.notReady;
    if (this.draining) res.shouldKeepAlive = false;
    res.writeHead(down ? 503 : 200, { 'content-type': 'application/json', 'cache-control': 'no-store' });
    res.end(JSON.stringify({ status: down ? 'draining' : 'ok', pid: process.pid }));
  }

  private track(sock: Tracked<Socket>): void {
    sock[STATE] = { server: this, socket: sock, active: 0, idleSince: Date.now(), upgraded: false };
    this.conns.add(sock);
    sock.on('close', onSocketClose);
  }

  /** A connection closed (called from the shared 'close' handler). */
  untrack(sock: Tracked<Socket>): void {
    this.conns.delete(sock);
    this.onConnectionClosed?.();
  }

  /** A response ended or was aborted (called from the shared 'close' handler). */
  finished(res: http.ServerResponse & Timed, st: ConnState): void {
    const t0 = res[STARTED];
    if (t0 !== undefined) REQUESTS.record(res.statusCode, t0);
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

  private handle(req: http.IncomingMessage, res: Tracked<http.ServerResponse> & Timed): void {
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
      if (REQUESTS.on) res[STARTED] = performance.now();
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

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
