// Creating the server object for one bind: http, https, or http2 with an HTTP/1.1 fallback (`ssl://`
// binds: listen/tls.ts), or a feed into the app's own TLS server (listen-compat with https.createServer).
import type * as http from 'node:http';
import type { Socket } from 'node:net';
import * as net from 'node:net';
import type * as tls from 'node:tls';
import { httpTimeouts, type LoadedApp, type UpgradeListener } from '../app/index.js';
import type { Config } from '../config/index.js';
import { usageError } from '../errors.js';
import { type TlsBindOptions, TlsBinds } from '../listen/tls.js';
import type { Logger } from '../log/logger.js';
import { markUpgraded, type Tracked } from './connections.js';

// node:http through process.getBuiltinModule, not an ES import: on Node 22+ an import reads every
// export, http's lazy WebSocket, CloseEvent and MessageEvent among them, which loads undici (~800 KB of
// source, ~3 MB of heap) into a process that never uses them (docs/benchmarks.md, "Footprint").
const nodeHttp = (): typeof import('node:http') => process.getBuiltinModule('node:http');

/** The bind URI of a slot key (`<uri>#<slot>`). */
export function bindOf(key: string): string {
  const i = key.lastIndexOf('#');
  return i === -1 ? key : key.slice(0, i);
}

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
  /**
   * Cluster mode with `--balance kernel`: a socket.io (engine.io) polling handshake means clients whose
   * next requests land on other workers (docs/balancing.md): warn once, naming --balance ip-hash.
   */
  warnPollingHandshake?: boolean;
}

/** The options of the server for a loaded app, as the configuration says. */
export function appServerOptions(app: LoadedApp, config: Config, log: Logger): AppServerOptions {
  const tlsBinds = new TlsBinds(config.binds);
  if (app.tlsServer !== undefined && tlsBinds.size > 0) {
    throw usageError(
      'ERR_NSERVE_TLS',
      `app ${app.file} terminates TLS itself (https.createServer): bind it with tcp://, not ssl://`,
    );
  }
  return {
    log,
    backlog: config.backlog,
    drainGraceMs: config.drainGraceMs,
    accessLog: config.accessLog,
    healthPath: config.healthPath,
    upgrade: app.upgrade,
    ...httpTimeouts(app, config),
    tls: tlsBinds,
    external: app.tlsServer,
    warnPollingHandshake: config.workers > 0 && config.balance === 'kernel',
  };
}

/** What the serving side does with a server once made: track its connections, handle its requests. */
export interface ServerHooks {
  instrument(server: net.Server, bind: TlsBindOptions | undefined): void;
  handle(req: http.IncomingMessage, res: http.ServerResponse): void;
}

/** The server for one bind: http, https, http2 (ALPN h2), or a feed into the app's own TLS server. */
export function createBindServer(key: string, options: AppServerOptions, hooks: ServerHooks): net.Server {
  const external: tls.Server | undefined = options.external;
  if (external !== undefined) {
    // Connections go to the app's server, which does the handshake with its own options.
    return net.createServer((raw) => external.emit('connection', raw));
  }
  const uri = bindOf(key);
  const tlsOptions = options.tls?.serverOptions(uri);
  const bind = options.tls?.options(uri);
  const timeouts = {
    keepAliveTimeout: options.keepAliveTimeoutMs ?? 5000,
    ...(options.headersTimeoutMs === undefined ? {} : { headersTimeout: options.headersTimeoutMs }),
    ...(options.requestTimeoutMs === undefined ? {} : { requestTimeout: options.requestTimeoutMs }),
  };
  let server: http.Server | tls.Server;
  if (tlsOptions === undefined || bind === undefined) server = nodeHttp().createServer(timeouts);
  // https and http2 are loaded for ssl:// binds only: each costs every process memory and start-up time.
  else if (bind.alpn.includes('h2'))
    server = process
      .getBuiltinModule('node:http2')
      .createSecureServer({ ...tlsOptions, allowHTTP1: bind.alpn.includes('http/1.1') });
  else server = process.getBuiltinModule('node:https').createServer({ ...tlsOptions, ...timeouts });
  hooks.instrument(server, bind);
  server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => hooks.handle(req, res));
  // An upgraded connection stays tracked, as long-lived: a drain tells the app, then ends it.
  const upgrade = options.upgrade;
  if (upgrade !== undefined) {
    server.on('upgrade', (req: http.IncomingMessage, sock: Tracked<Socket>, head: Buffer) => {
      markUpgraded(req, sock);
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
