// Loading the user's app module and turning whatever it exports into one Node request listener.
import * as fs from 'node:fs';
import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import * as http from 'node:http';
import * as net from 'node:net';
import * as path from 'node:path';
import { type Duplex, Readable } from 'node:stream';
import * as tls from 'node:tls';
import { pathToFileURL } from 'node:url';
import { errorMessage, usageError } from './errors.js';

export type FetchHandler = (request: Request) => Response | Promise<Response>;

export interface LoadedApp {
  /** Absolute path of the module that was loaded (after symlinks in `directory` were resolved). */
  file: string;
  /** listener: default-exported (req, res); fetch: { fetch }; listen: the app's own server (listen-compat). */
  kind: 'listener' | 'fetch' | 'listen';
  listener: RequestListener;
  /** Listen-compat: the app's own 'upgrade' handling (WebSocket), if it has any. */
  upgrade?: UpgradeListener;
  /**
   * Listen-compat with the app's own TLS server (`https.createServer(opts, app)`, http2's
   * createSecureServer): it keeps its TLS options and handshakes; nserve feeds it the connections it
   * accepts and wraps its request listeners (server.ts).
   */
  tlsServer?: tls.Server;
}

export type UpgradeListener = (req: IncomingMessage, socket: Duplex, head: Buffer) => void;

const USABLE = 'default-export a (req, res) request listener or an object with a fetch(request) method';

/** Resolve APP against the (already realpath'd) directory; the file must exist. */
export function resolveAppFile(app: string, directory: string): string {
  const file = path.resolve(directory, app);
  let stat: fs.Stats;
  try {
    stat = fs.statSync(file);
  } catch {
    throw usageError(
      'ERR_NSERVE_APP_MISSING',
      `app file not found: ${file} (APP is resolved against --directory ${directory})`,
    );
  }
  if (!stat.isFile()) throw usageError('ERR_NSERVE_APP_MISSING', `app is not a file: ${file}`);
  return file;
}

export interface LoadOptions {
  /** Ports of nserve's TCP binds: an app's own `server.listen(port)` on one of them is served by nserve. */
  ports: readonly number[];
  /** How long to wait for an app without a usable export to call listen() (it may connect to a DB first). */
  listenWaitMs: number;
}

export async function loadApp(
  app: string,
  directory: string,
  options: LoadOptions = { ports: [], listenWaitMs: 0 },
): Promise<LoadedApp> {
  const file = resolveAppFile(app, directory);
  const capture = captureListen(options.ports);
  let mod: Record<string, unknown>;
  try {
    // import() also awaits the module's top-level await, so the app is ready when this resolves.
    mod = (await import(pathToFileURL(file).href)) as Record<string, unknown>;
  } catch (err) {
    throw usageError('ERR_NSERVE_APP_LOAD', `app ${file} failed to load: ${errorMessage(err)}`, err);
  }
  const handler = pickExport(mod);
  const server =
    capture.server ?? (handler === undefined ? await capture.wait(options.listenWaitMs) : undefined);
  if (server instanceof tls.Server) {
    return {
      file,
      kind: 'listen',
      listener: (req, res) => server.emit('request', req, res),
      tlsServer: server,
    };
  }
  if (server !== undefined) {
    // Listen-compat: the app started its own server; requests nserve accepts are handed to it.
    return {
      file,
      kind: 'listen',
      listener: (req, res) => server.emit('request', req, res),
      // Checked per upgrade: the app may add its WebSocket server after listen() returned.
      upgrade: (req, socket, head) => {
        if (server.listenerCount('upgrade') > 0) server.emit('upgrade', req, socket, head);
        else socket.destroy();
      },
    };
  }
  if (handler === undefined) {
    throw usageError('ERR_NSERVE_APP_EXPORT', `app ${file} exports no usable handler: ${USABLE}`);
  }
  const upgrade = pickUpgrade(mod);
  const extra = upgrade === undefined ? {} : { upgrade };
  if (typeof handler === 'function')
    return { file, kind: 'listener', listener: handler as RequestListener, ...extra };
  return { file, kind: 'fetch', listener: fetchListener(handler.fetch.bind(handler)), ...extra };
}

/** An app's server that listen-compat captures: http, or https/http2 (TLS terminated by the app). */
type AppHttpServer = http.Server | tls.Server;

interface ListenCapture {
  server: AppHttpServer | undefined;
  wait(ms: number): Promise<AppHttpServer | undefined>;
}

/**
 * Listen-compat mode, like Node's cluster does for workers: while nserve serves, an http.Server (or an
 * https.Server, which keeps its own TLS options) of the app that listens on one of nserve's ports (or on $PORT, which nserve sets to its first TCP port) is
 * not bound; it reports 'listening' with nserve's address and receives the requests nserve accepts.
 * Listens on other ports are left alone.
 */
function captureListen(ports: readonly number[]): ListenCapture {
  const capture: ListenCapture & { waiters: ((s: AppHttpServer) => void)[] } = {
    server: undefined,
    waiters: [],
    wait(ms) {
      if (this.server !== undefined || ms <= 0) return Promise.resolve(this.server);
      return new Promise((resolve) => {
        const timer = setTimeout(() => resolve(undefined), ms);
        this.waiters.push((server) => {
          clearTimeout(timer);
          resolve(server);
        });
      });
    },
  };
  if (ports.length === 0) return capture;
  const original = net.Server.prototype.listen;
  net.Server.prototype.listen = function listen(this: net.Server, ...args: unknown[]): net.Server {
    const port = requestedPort(args);
    // https.Server and http2's secure server are tls.Servers (a plain tls.Server of the app is not HTTP,
    // but nserve could not serve HTTP on a port the app meant for raw TLS either).
    const httpish = this instanceof http.Server || this instanceof tls.Server;
    if (!httpish || port === undefined || !ports.includes(port)) {
      return original.apply(this, args as Parameters<typeof original>);
    }
    capture.server ??= this;
    const callback = args.find((a): a is () => void => typeof a === 'function');
    if (callback !== undefined) this.once('listening', callback);
    const address: net.AddressInfo = { address: '0.0.0.0', family: 'IPv4', port: ports[0]! };
    this.address = () => address;
    process.nextTick(() => this.emit('listening'));
    for (const w of capture.waiters.splice(0)) w(this);
    return this;
  };
  return capture;
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

type Exported = RequestListener | { fetch: FetchHandler };

function pickExport(mod: Record<string, unknown>): Exported | undefined {
  // CommonJS modules arrive as { default: module.exports }; transpiled ones may nest one more default.
  const candidates = [mod.default, (mod.default as Record<string, unknown> | undefined)?.default, mod];
  for (const c of candidates) {
    if (typeof c === 'object' && c !== null && typeof (c as { fetch?: unknown }).fetch === 'function') {
      return c as { fetch: FetchHandler };
    }
    // An express app or koa's app.callback() is a function; Hono-style apps are objects with fetch().
    if (typeof c === 'function') return c as RequestListener;
  }
  return undefined;
}

/**
 * An exported-handler app handles HTTP upgrades (WebSocket: `ws` with `noServer: true`) with an export
 * named `upgrade(req, socket, head)`, or an `upgrade` method on its default export.
 */
function pickUpgrade(mod: Record<string, unknown>): UpgradeListener | undefined {
  const d = mod.default as { upgrade?: unknown } | undefined;
  for (const [owner, fn] of [
    [mod, mod.upgrade],
    [d, d?.upgrade],
  ] as const) {
    if (typeof fn === 'function') return (fn as UpgradeListener).bind(owner);
  }
  return undefined;
}

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
