// Loading the user's app module and turning whatever it exports into one Node request listener.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import * as http from 'node:http';
import * as net from 'node:net';
import * as path from 'node:path';
import { type Duplex, Readable } from 'node:stream';
import * as tls from 'node:tls';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { Config } from './config.js';
import { type NserveErrorCode, usageError } from './errors.js';

export type FetchHandler = (request: Request) => Response | Promise<Response>;

export interface LoadedApp {
  /** Absolute path of the module that was loaded (after symlinks in `directory` were resolved). */
  file: string;
  /** listener: default-exported (req, res); fetch: { fetch }; listen: the app's own server (listen-compat). */
  kind: 'listener' | 'fetch' | 'listen';
  listener: RequestListener;
  /** Listen-compat: the app's own 'upgrade' handling (WebSocket), if it has any. */
  upgrade?: UpgradeListener;
  /** Listen-compat: the app's own server (its keepAliveTimeout, headersTimeout, requestTimeout are honoured). */
  server?: http.Server;
  /**
   * Listen-compat with the app's own TLS server (`https.createServer(opts, app)`, http2's
   * createSecureServer): it keeps its TLS options and handshakes; nserve feeds it the connections it
   * accepts and wraps its request listeners (server.ts).
   */
  tlsServer?: tls.Server;
}

export type UpgradeListener = (req: IncomingMessage, socket: Duplex, head: Buffer) => void;

/** Codes of an app that cannot start as given (bad input, exit 2): a worker's boot error with one is the app's. */
export const APP_FAILURE_CODES: ReadonlySet<string> = new Set<NserveErrorCode>([
  'ERR_NSERVE_APP_LOAD',
  'ERR_NSERVE_APP_EXPORT',
  'ERR_NSERVE_APP_MISSING',
]);

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
    throw usageError('ERR_NSERVE_APP_LOAD', describeLoadFailure(err, file, directory), err);
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
      server,
      listener: (req, res) => server.emit('request', req, res),
      // Checked per upgrade: the app may add its WebSocket server after listen() returned.
      upgrade: (req, socket, head) => {
        if (server.listenerCount('upgrade') > 0) server.emit('upgrade', req, socket, head);
        else socket.destroy();
      },
    };
  }
  if (handler === undefined && capture.elsewhere.length > 0) {
    // An app that hard-codes its port (app.listen(23379)) listened on a port nserve does not serve.
    const port = options.ports[0];
    throw usageError(
      'ERR_NSERVE_APP_EXPORT',
      `app ${file} listened on port ${capture.elsewhere.join(', ')} instead of $PORT${port === undefined ? '' : ` (${port}, the port nserve serves)`}, and did not listen on $PORT within ${options.listenWaitMs / 1000} s: listen on process.env.PORT, or ${USABLE}`,
    );
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
  /** Ports of the app's HTTP listens that were not nserve's (left alone). */
  elsewhere: number[];
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
    elsewhere: [],
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
      if (httpish && port !== undefined) capture.elsewhere.push(port);
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

// ── load failures ───────────────────────────────────────────────────────────────────────────────────────
// An app that throws at import is reported with the first stack frame inside the app (file:line:column,
// skipping node_modules and Node's internals) and a short code frame, in single and cluster mode alike.

export interface SourceLocation {
  file: string;
  line: number;
  column: number;
}

/** `app FILE failed to load: Type: message (at path:line:col)`, then a code frame when the line is known. */
export function describeLoadFailure(err: unknown, file: string, directory: string): string {
  const e = err instanceof Error ? err : new Error(String(err));
  const type = e.name === 'Error' || e.name === '' ? '' : `${e.name}: `;
  const first = e.message.split('\n')[0] ?? '';
  const at =
    appFrame(e.stack ?? '', directory) ??
    (e.name === 'SyntaxError' ? syntaxErrorAt(file, directory) : undefined);
  const where =
    at === undefined ? '' : ` (at ${path.relative(directory, at.file) || at.file}:${at.line}:${at.column})`;
  const frame = at === undefined ? undefined : codeFrame(at);
  return `app ${file} failed to load: ${type}${first}${where}${frame === undefined ? '' : `\n${frame}`}`;
}

/** The first location in a stack inside `directory` and not in node_modules (else the first inside it). */
export function appFrame(stack: string, directory: string): SourceLocation | undefined {
  const found: SourceLocation[] = [];
  // A CommonJS SyntaxError starts with "path:line", the offending line and a caret under the column.
  const header = /^(\/[^\n]*?):(\d+)\n([^\n]*)\n( *)\^/.exec(stack);
  if (header !== undefined && header !== null)
    found.push({ file: header[1]!, line: Number(header[2]), column: header[4]!.length + 1 });
  for (const m of stack.matchAll(/^\s+at (?:.*\()?((?:file:\/\/)?\/[^():]+):(\d+):(\d+)\)?$/gm)) {
    const raw = m[1]!;
    const f = raw.startsWith('file://') ? fileURLToPath(raw) : raw;
    found.push({ file: f, line: Number(m[2]), column: Number(m[3]) });
  }
  const inside = found.filter((l) => l.file.startsWith(`${directory}${path.sep}`));
  return inside.find((l) => !l.file.includes(`${path.sep}node_modules${path.sep}`)) ?? inside[0];
}

/**
 * An ES module's SyntaxError carries no location in its stack (Node prints it only for an uncaught one):
 * find it with `node --check` on the app file and the files it imports relatively (at most 50, inside
 * the app's directory). Only on this failure path, so its cost (~40 ms a file) is paid only then.
 */
function syntaxErrorAt(file: string, directory: string): SourceLocation | undefined {
  const queue = [file];
  const seen = new Set<string>();
  while (queue.length > 0 && seen.size < 50) {
    const f = queue.shift()!;
    if (seen.has(f) || !f.startsWith(`${directory}${path.sep}`) || !fs.existsSync(f)) continue;
    seen.add(f);
    const r = spawnSync(process.execPath, ['--check', f], { encoding: 'utf8', timeout: 5000 });
    if (r.status !== 0 && typeof r.stderr === 'string') {
      const at = appFrame(r.stderr.trimStart(), directory);
      if (at !== undefined) return at;
    }
    let source = '';
    try {
      source = fs.readFileSync(f, 'utf8');
    } catch {
      continue;
    }
    for (const m of source.matchAll(/(?:from|import)\s*['"](\.{1,2}\/[^'"]+)['"]/g))
      queue.push(path.resolve(path.dirname(f), m[1]!));
  }
  return undefined;
}

/** Two lines around the location, the line itself marked, a caret under the column. */
export function codeFrame(at: SourceLocation): string | undefined {
  let lines: string[];
  try {
    lines = fs.readFileSync(at.file, 'utf8').split('\n');
  } catch {
    return undefined;
  }
  const count = lines.at(-1) === '' ? lines.length - 1 : lines.length;
  if (at.line < 1 || at.line > count) return undefined;
  const from = Math.max(1, at.line - 2);
  const to = Math.min(count, at.line + 1);
  const width = String(to).length;
  const out: string[] = [];
  for (let n = from; n <= to; n++) {
    const text = (lines[n - 1] ?? '').replace(/\t/g, '  ').slice(0, 160);
    out.push(`${n === at.line ? '>' : ' '} ${String(n).padStart(width)} | ${text}`.trimEnd());
    if (n === at.line) out.push(`  ${' '.repeat(width)} | ${' '.repeat(Math.max(0, at.column - 1))}^`);
  }
  return out.join('\n');
}

// ── HTTP timeouts ───────────────────────────────────────────────────────────────────────────────────────

export interface HttpTimeouts {
  keepAliveTimeoutMs: number;
  headersTimeoutMs: number;
  requestTimeoutMs: number;
}

/** Node's own defaults (http.Server), which nserve keeps unless told otherwise. */
export const NODE_HTTP_TIMEOUTS: Readonly<HttpTimeouts> = {
  keepAliveTimeoutMs: 5000,
  headersTimeoutMs: 60_000,
  requestTimeoutMs: 300_000,
};

/**
 * The timeouts nserve's servers use for the app: an explicit setting (flag or config) first, else what
 * the app set on its own server (listen-compat: `server.keepAliveTimeout = 65000` after `app.listen()`),
 * else Node's default. Read when nserve starts serving, after the app's module ran.
 */
export function httpTimeouts(
  app: Pick<LoadedApp, 'server'>,
  config: Pick<Config, 'keepAliveTimeoutMs' | 'headersTimeoutMs' | 'requestTimeoutMs'>,
): HttpTimeouts {
  const own = app.server;
  const fromApp = (v: number | undefined, dflt: number): number =>
    typeof v === 'number' && Number.isFinite(v) && v >= 0 ? v : dflt;
  const out = {
    keepAliveTimeoutMs:
      config.keepAliveTimeoutMs ?? fromApp(own?.keepAliveTimeout, NODE_HTTP_TIMEOUTS.keepAliveTimeoutMs),
    headersTimeoutMs:
      config.headersTimeoutMs ?? fromApp(own?.headersTimeout, NODE_HTTP_TIMEOUTS.headersTimeoutMs),
    requestTimeoutMs:
      config.requestTimeoutMs ?? fromApp(own?.requestTimeout, NODE_HTTP_TIMEOUTS.requestTimeoutMs),
  };
  // Node refuses headersTimeout > requestTimeout (when the latter is set).
  if (out.requestTimeoutMs > 0 && out.headersTimeoutMs > out.requestTimeoutMs)
    out.headersTimeoutMs = out.requestTimeoutMs;
  return out;
}
