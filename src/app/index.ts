// Loading the user's app module and turning whatever it exports into one Node request listener.
// By role: listen-compat (app/listen-compat.ts), fetch handlers (app/fetch.ts), reporting an app that
// fails to load (app/load-failure.ts); Node's HTTP timeouts as the config and the app set them stay here.
import * as fs from 'node:fs';
import type * as http from 'node:http';
import type { IncomingMessage, RequestListener } from 'node:http';
import * as path from 'node:path';
import type { Duplex } from 'node:stream';
import type * as tls from 'node:tls';
import { pathToFileURL } from 'node:url';
import type { Config } from '../config/index.js';
import { NserveError, type NserveErrorCode, usageError } from '../errors.js';
import { isTlsServer } from '../listen/tls.js';
import { fetchListener } from './fetch.js';
import { captureListen } from './listen-compat.js';
import { describeLoadFailure } from './load-failure.js';
import { holdAppStopListeners } from './stop-signals.js';

export { fetchListener } from './fetch.js';
export { compatPorts, listenWaitMs, publishPorts } from './listen-compat.js';
export { appFrame, codeFrame, describeLoadFailure, type SourceLocation } from './load-failure.js';

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
   * accepts and wraps its request listeners (server/index.ts).
   */
  tlsServer?: tls.Server;
}

/**
 * While the app's module loads, `process.exit()` does not exit: it throws, which ends the module's code as
 * an exit would, and the load fails as a failed start (ERR_NSERVE_APP_EXIT), the same in every mode.
 * A real exit there would end a single-mode server silently (exit 0, nothing said, the pidfile and
 * socket files of a half-started server left behind), and a cluster worker's boot with only an exit code.
 * Whatever was installed before (an optimistic hot restart's boot guard) is put back afterwards.
 */
function interceptExit(): { code: number | string | undefined; restore(): void } {
  const before = process.exit;
  const calls: { code: number | string | undefined; restore(): void } = {
    code: undefined,
    restore: () => {
      process.exit = before;
    },
  };
  process.exit = ((code?: number | string | null) => {
    calls.code ??= code ?? process.exitCode ?? 0;
    throw new AppExitCalled(calls.code);
  }) as typeof process.exit;
  return calls;
}

class AppExitCalled extends Error {
  constructor(code: number | string) {
    super(`process.exit(${code}) called while the app was loading`);
    this.name = 'AppExitCalled';
  }
}

/** Exit status 1, as a cluster worker that exits while booting made its master exit before. */
function appExited(file: string, code: number | string): NserveError {
  return appFailure('ERR_NSERVE_APP_EXIT', `app ${file} called process.exit(${code}) while loading`);
}

export type UpgradeListener = (req: IncomingMessage, socket: Duplex, head: Buffer) => void;

/** Codes of an app that cannot start as given (bad input, exit 2): a worker's boot error with one is the app's. */
export const APP_FAILURE_CODES: ReadonlySet<string> = new Set<NserveErrorCode>([
  'ERR_NSERVE_APP_LOAD',
  'ERR_NSERVE_APP_EXPORT',
  'ERR_NSERVE_APP_MISSING',
  'ERR_NSERVE_APP_EXIT',
]);

/** A worker's report of an app failure (a code of APP_FAILURE_CODES) as the error single mode raises. */
export function appFailure(code: NserveErrorCode, message: string): NserveError {
  return new NserveError(code, message, {
    usage: true,
    ...(code === 'ERR_NSERVE_APP_EXIT' ? { exitCode: 1 } : {}),
  });
}

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
  /** The app's arguments (config args, `-- ARGS`): process.argv becomes [node, file, ...args]. */
  args?: readonly string[];
}

export async function loadApp(
  app: string,
  directory: string,
  options: LoadOptions = { ports: [], listenWaitMs: 0 },
): Promise<LoadedApp> {
  const file = resolveAppFile(app, directory);
  // The app reads its command line as if Node had run it (`node APP ARGS…`): a CLI such as Next.js's
  // parses process.argv.slice(2), and nserve's own options there would be unknown to it. nserve's own
  // command line, which workers and a hot restart run again, was kept before (restart/handoff.ts).
  process.argv = [process.argv[0] ?? process.execPath, file, ...(options.args ?? [])];
  // The app's own SIGTERM/SIGINT listeners wait for nserve's drain (app/stop-signals.ts).
  holdAppStopListeners();
  const capture = captureListen(options.ports);
  let mod: Record<string, unknown>;
  const exitCalls = interceptExit();
  try {
    // import() also awaits the module's top-level await, so the app is ready when this resolves.
    mod = (await import(pathToFileURL(file).href)) as Record<string, unknown>;
  } catch (err) {
    if (exitCalls.code !== undefined) throw appExited(file, exitCalls.code);
    throw usageError('ERR_NSERVE_APP_LOAD', describeLoadFailure(err, file, directory), err);
  } finally {
    exitCalls.restore();
  }
  // An exit the app's own code caught (try/catch around it) still means it wanted to stop.
  if (exitCalls.code !== undefined) throw appExited(file, exitCalls.code);
  const handler = pickExport(mod);
  let server: http.Server | tls.Server | undefined;
  try {
    server = capture.server ?? (handler === undefined ? await capture.wait(options.listenWaitMs) : undefined);
    // A listen's error is emitted on a later tick: let one on a hard-coded port arrive before deciding.
    if (capture.elsewhere.length > 0) await new Promise((resolve) => setImmediate(resolve));
  } finally {
    capture.release();
  }
  const failed = capture.failed[0];
  if (failed !== undefined) throw listenFailed(file, failed, server ?? handler, options.ports[0]);
  if (isTlsServer(server)) {
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

/**
 * The app's own server failed to listen on a port nserve does not serve, and the app had no 'error'
 * listener (it would have been an uncaught exception). In cluster mode that is the usual end of a
 * hard-coded port: the first worker binds it, the next gets EADDRINUSE. Said as single mode says it.
 */
function listenFailed(
  file: string,
  failed: { port: number; err: Error & { code?: string } },
  served: unknown,
  port: number | undefined,
): NserveError {
  const why =
    failed.err.code === 'EADDRINUSE'
      ? `${failed.err.message} (in cluster mode every worker runs the app: a port it hard-codes can be bound by one worker only)`
      : failed.err.message;
  const ours = port === undefined ? '' : ` (${port}, the port nserve serves)`;
  if (served === undefined)
    return usageError(
      'ERR_NSERVE_APP_EXPORT',
      `app ${file} listened on port ${failed.port} instead of $PORT${ours}, and that failed: ${why}: listen on process.env.PORT, or ${USABLE}`,
    );
  return usageError(
    'ERR_NSERVE_APP_LOAD',
    `app ${file} started a server of its own on port ${failed.port}, and that failed: ${why}: give it a port per process, or handle its 'error' event`,
  );
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
