// Listen-compat: an app that starts its own server (server.listen($PORT)) is served by nserve on its
// ports; the ports nserve binds are published to the app ($PORT) and to every process that loads it.
import type * as http from 'node:http';
import * as net from 'node:net';
import type * as tls from 'node:tls';
import { isTlsServer } from '../listen/tls.js';

/**
 * Node's own listen, as it was before any capture: nserve's own servers (portable mode binds with Node)
 * must bind where they were told, never be mistaken for the app's server by the capture below.
 */
const NODE_LISTEN = net.Server.prototype.listen;

/** Listen with Node's own net.Server.listen, whatever listen-compat has patched since. */
export function listenUncaptured(server: net.Server, options: net.ListenOptions, callback: () => void): void {
  NODE_LISTEN.call(server, options, callback);
}

/** An app's server that listen-compat captures: http, or https/http2 (TLS terminated by the app). */
type AppHttpServer = http.Server | tls.Server;

export interface ListenCapture {
  server: AppHttpServer | undefined;
  /** Ports of the app's HTTP listens that were not nserve's (left alone). */
  elsewhere: number[];
  /**
   * Those listens that failed (EADDRINUSE: in cluster mode every worker runs the app, so a port it
   * hard-codes is bound by the first worker only) while the app loads, with no 'error' listener of the
   * app's own: recorded for loadApp's one-line error instead of an uncaught exception.
   */
  failed: { port: number; err: Error & { code?: string } }[];
  wait(ms: number): Promise<AppHttpServer | undefined>;
  /** The app has loaded: its servers' later errors are its own again. */
  release(): void;
}

/**
 * Listen-compat mode, like Node's cluster does for workers: while nserve serves, an http.Server (or an
 * https.Server, which keeps its own TLS options) of the app that listens on one of nserve's ports (or on $PORT, which nserve sets to its first TCP port) is
 * not bound; it reports 'listening' with nserve's address and receives the requests nserve accepts.
 * Listens on other ports are left alone.
 */
export function captureListen(ports: readonly number[]): ListenCapture {
  const watched: [net.Server, (err: Error) => void][] = [];
  const capture: ListenCapture & { waiters: ((s: AppHttpServer | undefined) => void)[] } = {
    server: undefined,
    elsewhere: [],
    failed: [],
    waiters: [],
    wait(ms) {
      if (this.server !== undefined || this.failed.length > 0 || ms <= 0) return Promise.resolve(this.server);
      return new Promise((resolve) => {
        const timer = setTimeout(() => resolve(undefined), ms);
        this.waiters.push((server) => {
          clearTimeout(timer);
          resolve(server);
        });
      });
    },
    release() {
      for (const [server, onError] of watched.splice(0)) server.off('error', onError);
    },
  };
  if (ports.length === 0) return capture;
  const original = net.Server.prototype.listen;
  net.Server.prototype.listen = function listen(this: net.Server, ...args: unknown[]): net.Server {
    const port = requestedPort(args);
    // https.Server and http2's secure server are tls.Servers (a plain tls.Server of the app is not HTTP,
    // but nserve could not serve HTTP on a port the app meant for raw TLS either).
    // node:http by getBuiltinModule: this module is loaded by the master too, which serves no HTTP.
    const httpish = this instanceof process.getBuiltinModule('node:http').Server || isTlsServer(this);
    if (!httpish || port === undefined || !ports.includes(port)) {
      if (httpish && port !== undefined) {
        capture.elsewhere.push(port);
        // Ours is a listener too: the error is the app's to handle when it has one of its own.
        const onError = (err: Error): void => {
          if (this.listenerCount('error') > 1) return;
          capture.failed.push({ port, err });
          for (const w of capture.waiters.splice(0)) w(undefined);
        };
        this.once('error', onError);
        watched.push([this, onError]);
      }
      return original.apply(this, args as Parameters<typeof original>);
    }
    capture.server ??= this;
    const callback = args.find((a): a is () => void => typeof a === 'function');
    if (callback !== undefined) this.once('listening', callback);
    const address: net.AddressInfo = { address: '0.0.0.0', family: 'IPv4', port: ports[0]! };
    this.address = () => address;
    closesUnbound(this);
    process.nextTick(() => this.emit('listening'));
    for (const w of capture.waiters.splice(0)) w(this);
    return this;
  };
  return capture;
}

/**
 * A captured server was never bound, so Node's close() would answer ERR_SERVER_NOT_RUNNING: an app that
 * closes its server at a stop (Next.js's `next start` does, and prints the error) gets the close it expects.
 */
function closesUnbound(server: net.Server): void {
  const close = (callback?: (err?: Error) => void): net.Server => {
    if (callback !== undefined) server.once('close', () => callback());
    process.nextTick(() => server.emit('close'));
    return server;
  };
  Object.defineProperty(server, 'close', { value: close, writable: true, configurable: true });
}

function requestedPort(args: unknown[]): number | undefined {
  const first = args[0];
  if (typeof first === 'number') return first;
  if (typeof first === 'string' && /^\d+$/.test(first)) return Number(first);
  if (typeof first === 'object' && first !== null && 'port' in first) {
    const port = (first as { port?: unknown }).port;
    return typeof port === 'number'
      ? port
      : typeof port === 'string' && /^\d+$/.test(port)
        ? Number(port)
        : undefined;
  }
  return undefined;
}

/**
 * The ports an app's own listen() is matched against: nserve's TCP bind ports (NSERVE_PORTS, set by
 * the process that bound them, for ephemeral ports), the configured ones, and $PORT.
 */
export function compatPorts(configured: readonly number[], env: NodeJS.ProcessEnv): number[] {
  const ports = new Set(configured.filter((p) => p > 0));
  for (const p of (env.NSERVE_PORTS ?? '').split(',')) if (/^\d+$/.test(p)) ports.add(Number(p));
  if (env.PORT !== undefined && /^\d+$/.test(env.PORT)) ports.add(Number(env.PORT));
  return [...ports];
}

/** Make the bound TCP ports known to the app ($PORT) and to every process that loads it. */
export function publishPorts(ports: readonly number[], env: NodeJS.ProcessEnv = process.env): void {
  const unique = [...new Set(ports)];
  if (unique.length === 0) return;
  env.PORT = String(unique[0]);
  env.NSERVE_PORTS = unique.join(',');
}

/**
 * How long an app with no usable export may take to call listen() after its module loaded (e.g. in a
 * `db.connect().then(() => app.listen(PORT))`); past that, it is reported as exporting nothing usable.
 */
export function listenWaitMs(config: { workerBootTimeoutMs: number }): number {
  return Math.min(config.workerBootTimeoutMs, 5000);
}
