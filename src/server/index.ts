// Serving HTTP on listening descriptors, and draining without failing a request.
//
// Draining follows what we measured (PITFALLS.md): `http.Server.close()` resets keep-alive clients whose
// next request is already on the wire, so nserve only stops accepting (`net.Server.prototype.close`),
// answers every later request with `Connection: close`, and closes a connection only after it has been
// idle for a grace period.
//
// A drain waits for requests only. Long-lived connections (upgraded sockets, event streams, responses
// the app marked: see app/drain-api.ts) are told to go (`announce`) and, after their grace, ended with a clean
// close (FIN after pending writes, never a reset). Responses marked "finish on old code" are waited for
// separately (`finishOnOld`), after the drain, so that a cluster hand-over does not wait for them.
//
// TLS (`ssl://` binds: listen/tls.ts) only changes which server object is made for a bind (https, or http2 with
// an HTTP/1.1 fallback) and what is tracked: a connection is tracked as its TLS socket once the
// handshake is done, and counted as "handshaking" until then, so a drain waits for it. An app that
// terminates TLS itself (listen-compat with an https.Server) keeps its own server: nserve hands it the
// connections it accepts and serves the requests that come out of it.
//
// By role: connection classification and tracking (server/connections.ts), draining (server/drain.ts),
// creating the server object for a bind, TLS or not (server/create.ts), the health answer, access log and
// polling-handshake warning (server/per-request.ts); this module serves.
import type * as http from 'node:http';
import type { Socket } from 'node:net';
import * as net from 'node:net';
import { announceDrain, type DrainInfo, retractDrain } from '../app/drain-api.js';
import type { LoadedApp } from '../app/index.js';
import { listenUncaptured } from '../app/listen-compat.js';
import type { Config } from '../config/index.js';
import { errorMessage } from '../errors.js';
import { type CertVerdict, isTlsServer, type TlsBindOptions, type TlsBinds } from '../listen/tls.js';
import { logEvent } from '../log/events.js';
import type { Logger } from '../log/logger.js';
import { REQUESTS, STARTED, type Timed } from '../metrics/requests.js';
import * as native from '../native/index.js';
import {
  Connections,
  ConnState,
  isEngineHandshake,
  markUpgraded,
  onResponseClose,
  onSocketClose,
  STATE,
  type Tracked,
} from './connections.js';
import { type AppServerOptions, appServerOptions, bindOf, createBindServer } from './create.js';
import {
  type DrainResult,
  drainConnections,
  finishOnOld,
  type LongPollPolicy,
  waitLongLived,
} from './drain.js';
import { answerHealth, logAccess, logHandlerThrew, warnPollingHandshake } from './per-request.js';

export type { AppServerOptions } from './create.js';
export type { DrainResult } from './drain.js';

export class AppServer {
  requests = 0;
  inFlight = 0;
  /** The server accepting on each slot key (an http/https/http2 server, or a feed into `external`). */
  private readonly servers = new Map<string, net.Server>();
  /** The listening descriptor each server accepts on (closed with it). */
  private readonly fds = new Map<string, number>();
  /** What is open: connections, handshakes, HTTP/2 sessions, responses (server/connections.ts). */
  private readonly live = new Connections();
  private draining = false;
  private announced = false;
  private notReady = false;
  /** Serve connections adopted at a graceful stop, per bind (its listening servers are closed by then). */
  private readonly spares = new Map<string, net.Server>();
  private askedLongLived = 0;
  private warnedPolling = false;
  private readonly responseStarted = new WeakMap<http.ServerResponse, bigint>();
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
      external.prependListener('upgrade', (req: http.IncomingMessage, sock: Tracked<Socket>) =>
        markUpgraded(req, sock),
      );
    }
  }

  /** The server for a loaded app, as the configuration says (single mode and workers alike). */
  static forApp(app: LoadedApp, config: Config, log: Logger): AppServer {
    return new AppServer(app.listener, appServerOptions(app, config, log));
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
        if (bindOf(key) === uri && isTlsServer(server)) server.setSecureContext(options);
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
      // Node re-issues listen() on the descriptor with this backlog: an argument, as Node 20 ignores
      // `backlog` in the options when there is an `fd` (it listened with 511; nserve_listen_backlog).
      server.listen({ fd }, this.options.backlog, () => {
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
      // Not server.listen: after the app loaded, listen-compat's capture of the app's own listen() is
      // still in place, and would take this server for the app's (nothing bound, 0.0.0.0 reported).
      listenUncaptured(server, { ...options, backlog: this.options.backlog }, () => {
        server.off('error', reject);
        resolve();
      });
    });
    return server.address();
  }

  /** The server for one bind (server/create.ts), tracked and handled here. */
  private createServer(key: string): net.Server {
    return createBindServer(key, this.options, {
      instrument: (server, bind) => this.instrument(server, bind),
      handle: (req, res) => this.handle(req, res),
    });
  }

  /** Connection tracking for a new server (server/connections.ts). */
  private instrument(server: net.Server, bind: TlsBindOptions | undefined): void {
    this.live.watch(server, bind, {
      track: (sock) => this.track(sock),
      draining: () => this.draining,
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
    for (const res of this.live.responses()) if (!res.headersSent) res.shouldKeepAlive = false;
    // HTTP/2 has no Connection: close: GOAWAY lets open streams finish and tells the client to move on.
    for (const session of this.live.sessions) session.close();
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
        logEvent(
          this.options.log,
          'server.queue.takeover-failed',
          { err, fd },
          `taking over queued connections failed: ${errorMessage(err)}`,
        );
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
    return this.live.longLivedOpen();
  }

  /** Open connections (and TLS handshakes in progress): what a kill would reset. */
  connectionCount(): number {
    return this.live.conns.size + this.live.handshakes.size;
  }

  /** Open connections by kind, for metrics: serving a request, idle keep-alive, long-lived. */
  connectionCounts(): { request: number; idle: number; longLived: number } {
    return this.live.counts();
  }

  /** Tell the app this process drains (app/drain-api.ts): it may close its long-lived connections its own way. */
  announce(info: DrainInfo): void {
    if (this.announced) return;
    this.announced = true;
    this.askedLongLived = this.longLivedOpen();
    announceDrain(info, (err) =>
      logEvent(
        this.options.log,
        'app.on-drain.failed',
        { err },
        `an onDrain listener of the app failed: ${errorMessage(err)}`,
      ),
    );
  }

  /** Wait (at most `graceMs`) until no long-lived connection is open, while still serving (server/drain.ts). */
  async waitLongLived(graceMs: number): Promise<void> {
    await waitLongLived(this.live, graceMs);
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
    /** Long-polls: how long they hold the drain, and what then (server/drain.ts). */
    longPolls?: LongPollPolicy,
  ): Promise<DrainResult> {
    this.beginDraining();
    this.announce({ reason, graceMs: longLivedGraceMs });
    return drainConnections(this.live, {
      started: Date.now(),
      timeoutMs,
      longLivedGraceMs,
      drainGraceMs: this.options.drainGraceMs,
      asked: this.askedLongLived,
      longPolls,
    });
  }

  /** After the drain: wait (bounded) for responses marked "finish on old code"; destroy what is left. */
  async finishOnOld(timeoutMs: number): Promise<number> {
    return finishOnOld(this.live, timeoutMs);
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
    answerHealth(res, { draining: this.draining, notReady: this.notReady });
  }

  private track(sock: Tracked<Socket>): void {
    const st = new ConnState(this, sock, Date.now());
    sock[STATE] = st;
    this.live.conns.add(st);
    sock.on('close', onSocketClose);
  }

  /** A connection closed (called from the shared 'close' handler). */
  untrack(st: ConnState): void {
    this.live.conns.delete(st);
    this.live.onClosed?.();
  }

  /** A response ended or was aborted (called from the shared 'close' handler). */
  finished(res: http.ServerResponse & Timed, st: ConnState): void {
    const t0 = res[STARTED];
    if (t0 !== undefined) REQUESTS.record(res.statusCode, t0);
    this.inFlight--;
    if (st.res === res) st.res = null;
    else st.more?.delete(res);
    st.active--;
    st.idleSince = Date.now();
    if (this.options.accessLog !== true) return;
    const started = this.responseStarted.get(res);
    if (started !== undefined) logAccess(this.options.log, res, started);
  }

  /** Once per process (warnPollingHandshake in per-request.ts says why). The request is served as usual. */
  private warnPolling(req: http.IncomingMessage): void {
    this.warnedPolling = true;
    warnPollingHandshake(this.options.log, req);
  }

  private handle(req: http.IncomingMessage, res: Tracked<http.ServerResponse> & Timed): void {
    if (this.options.healthPath !== undefined && req.url?.split('?')[0] === this.options.healthPath) {
      this.health(res);
      return;
    }
    if (this.options.warnPollingHandshake === true && !this.warnedPolling && isEngineHandshake(req))
      this.warnPolling(req);
    const st = (req.socket as Tracked<Socket>)[STATE];
    this.requests++;
    if (st !== undefined) {
      this.inFlight++;
      st.active++;
      res[STATE] = st;
      if (REQUESTS.on) res[STARTED] = performance.now();
      if (st.res === null) st.res = res;
      else if (st.more === null) st.more = new Set([res]);
      else st.more.add(res);
      if (this.options.accessLog === true) this.responseStarted.set(res, process.hrtime.bigint());
      res.on('close', onResponseClose);
    }
    if (this.draining) res.shouldKeepAlive = false;
    try {
      this.listener(req, res);
    } catch (err) {
      logHandlerThrew(this.options.log, req, err);
      if (!res.headersSent) {
        res.writeHead(500, { 'content-type': 'text/plain', connection: 'close' });
        res.end('Internal Server Error\n');
      } else {
        res.destroy();
      }
    }
  }
}
