// Connection classification: which open connections and responses are requests, idle keep-alive, or
// long-lived (upgraded sockets, event streams, responses the app marked: see app/drain-api.ts), and the
// structures a server tracks them in (TLS: handshaking until the handshake is done, then the TLS socket).
import type * as http from 'node:http';
import type * as http2 from 'node:http2';
import type { Socket } from 'node:net';
import * as net from 'node:net';
import type * as tls from 'node:tls';
import { CLASS, type MarkedClass } from '../app/drain-api.js';
import { isTlsServer, refusesPeer, type TlsBindOptions } from '../listen/tls.js';
import type { AppServer } from './index.js';
import { type WebSocketWatch, watchWebSocket } from './websocket-close.js';

/**
 * One tracked connection, kept on the socket itself (`sock[STATE]`): one object per connection, and it
 * is also the connection's link in `ConnList` (no Set entry, no hashing of the socket).
 */
export class ConnState {
  active = 0;
  /** Upgraded (WebSocket): no longer HTTP; long-lived. */
  upgraded = false;
  /** An `Upgrade: websocket` connection: the app's frames, followed for a clean 1012 close. */
  ws: WebSocketWatch | undefined = undefined;
  prev: ConnState | null = null;
  next: ConnState | null = null;
  /** In a ConnList (unlinked once, when the connection closes). */
  linked = false;
  /**
   * The responses in progress on this connection: the first in `res`; more at once (HTTP/1.1 pipelining,
   * HTTP/2 streams) in `more`. Kept here rather than in a server-wide Set: nothing to hash per request.
   */
  res: http.ServerResponse | null = null;
  more: Set<http.ServerResponse> | null = null;

  constructor(
    readonly server: AppServer,
    /** The tracked socket itself (an HTTP/2 response's `socket` is a proxy that refuses destroy/end). */
    readonly socket: Socket,
    public idleSince: number,
  ) {}
}

/** Mark an upgraded connection long-lived (and follow its frames when it is a WebSocket). */
export function markUpgraded(req: http.IncomingMessage, sock: Tracked<Socket>): void {
  const st = sock[STATE];
  if (st === undefined) return;
  st.upgraded = true;
  if (st.ws === undefined && req.headers.upgrade?.toLowerCase() === 'websocket') st.ws = watchWebSocket(sock);
}

// Per-connection and per-response state rides on the objects themselves, and the 'close' handlers are
// shared functions, not closures: this is the per-request hot path.
export const STATE = Symbol('nserve.connection');
export type Tracked<T> = T & { [STATE]?: ConnState };

/**
 * The open connections, as an intrusive doubly linked list through their ConnState: adding and
 * removing one is a few pointer writes (a Set hashed each socket and reallocated its table as
 * connections came and went).
 */
export class ConnList implements Iterable<Tracked<Socket>> {
  private head: ConnState | null = null;
  size = 0;

  add(st: ConnState): void {
    if (st.linked) return;
    st.linked = true;
    st.prev = null;
    st.next = this.head;
    if (this.head !== null) this.head.prev = st;
    this.head = st;
    this.size++;
  }

  delete(st: ConnState): boolean {
    if (!st.linked) return false;
    st.linked = false;
    if (st.prev !== null) st.prev.next = st.next;
    else this.head = st.next;
    if (st.next !== null) st.next.prev = st.prev;
    st.prev = null;
    st.next = null; // a closed connection must not keep others reachable
    this.size--;
    return true;
  }

  /** A snapshot (drains and metrics iterate rarely; connections come and go on every request). */
  [Symbol.iterator](): Iterator<Tracked<Socket>> {
    const out: Tracked<Socket>[] = [];
    for (let st = this.head; st !== null; st = st.next) out.push(st.socket);
    return out[Symbol.iterator]();
  }
}

export function onSocketClose(this: Tracked<Socket>): void {
  const st = this[STATE];
  if (st !== undefined) st.server.untrack(st);
}

export function onResponseClose(this: Tracked<http.ServerResponse>): void {
  const st = this[STATE];
  if (st !== undefined) st.server.finished(this, st);
}

/** The HTTP/2 stream a response goes out on; undefined for HTTP/1.x (a response owns its connection). */
export function h2StreamOf(res: http.ServerResponse): http2.ServerHttp2Stream | undefined {
  return (res as { stream?: http2.ServerHttp2Stream }).stream;
}

/** A connection that carries an HTTP/2 session (ALPN h2). */
export function isH2(sock: Socket): boolean {
  return (sock as Partial<tls.TLSSocket>).alpnProtocol === 'h2';
}

/** What counts as long-lived (told to go, ended after a grace) or may finish on old code. */
export function responseClass(res: http.ServerResponse): 'request' | MarkedClass {
  const marked = (res as { [CLASS]?: MarkedClass })[CLASS];
  if (marked !== undefined) return marked;
  if (isEnginePoll(res)) return 'long-poll';
  const type = res.getHeader('content-type') ?? headerFromRaw(res, 'content-type');
  return typeof type === 'string' && type.toLowerCase().startsWith('text/event-stream')
    ? 'long-lived'
    : 'request';
}

/**
 * engine.io's (socket.io's) polling transport: a GET held open until the server has packets, up to its
 * pingInterval (25 s by default). Known by its query (`EIO=4&transport=polling&sid=…`).
 */
function isEnginePoll(res: http.ServerResponse): boolean {
  const req = (res as { req?: http.IncomingMessage }).req;
  const url = req?.url;
  return (
    req?.method === 'GET' &&
    url !== undefined &&
    /[?&]transport=polling(&|$)/.test(url) &&
    /[?&]EIO=/.test(url)
  );
}

/**
 * engine.io's handshake: its first polling GET, before the server has given it a session (no `sid`).
 * The requests after it carry the `sid`, which lives in the memory of the process that answered this one.
 */
export function isEngineHandshake(req: http.IncomingMessage): boolean {
  const url = req.url;
  return (
    req.method === 'GET' &&
    url !== undefined &&
    /[?&]transport=polling(&|$)/.test(url) &&
    /[?&]EIO=/.test(url) &&
    !/[?&]sid=/.test(url)
  );
}

/** A header passed straight to writeHead() is only in the serialized head (getHeader() misses it). */
function headerFromRaw(res: http.ServerResponse, name: string): string | undefined {
  const head = (res as { _header?: unknown })._header;
  if (typeof head !== 'string') return undefined;
  const m = new RegExp(`\r\n${name}:[ \t]*([^\r\n]*)`, 'i').exec(head);
  return m?.[1];
}

/** A TCP connection whose TLS handshake is not done yet (raw socket → when it arrived). */
export type Handshakes = Map<Socket, number>;

/** The socket of the connection a response goes out on (its TLS socket for HTTP/2 streams). */
export function connectionOf(res: http.ServerResponse): Socket | null {
  return (res as Tracked<http.ServerResponse>)[STATE]?.socket ?? res.socket;
}

/** What one server has open: connections, TLS handshakes, HTTP/2 sessions, responses in progress. */
export class Connections {
  readonly conns = new ConnList();
  readonly handshakes: Handshakes = new Map();
  readonly sessions = new Set<http2.ServerHttp2Session>();
  /** The responses in progress, on every open connection (a snapshot). */
  responses(): http.ServerResponse[] {
    const out: http.ServerResponse[] = [];
    for (const sock of this.conns) {
      const st = sock[STATE];
      if (st === undefined) continue;
      if (st.res !== null) out.push(st.res);
      if (st.more !== null) for (const res of st.more) out.push(res);
    }
    return out;
  }

  /** Called when a connection or handshake closes, while a drain waits for the last one. */
  onClosed: (() => void) | undefined;

  /** Long-lived connections open now: upgraded sockets and long-lived responses in progress. */
  longLivedOpen(): number {
    let n = 0;
    for (const sock of this.conns) if (sock[STATE]?.upgraded === true) n++;
    for (const res of this.responses()) if (responseClass(res) === 'long-lived') n++;
    return n;
  }

  /** Open connections by kind, for metrics: serving a request, idle keep-alive, long-lived. */
  counts(): { request: number; idle: number; longLived: number } {
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
    for (const res of this.responses()) {
      if (responseClass(res) !== 'long-lived') continue;
      longLived++;
      request = Math.max(0, request - 1);
    }
    return { request, idle, longLived };
  }

  /**
   * Connection tracking. Plain HTTP: each accepted socket. TLS: the raw socket counts as handshaking
   * (a drain waits for it, for at most the drain grace), then its TLS socket is tracked.
   */
  watch(
    server: net.Server,
    bind: TlsBindOptions | undefined,
    serving: { track(sock: Socket): void; draining(): boolean },
  ): void {
    if (!isTlsServer(server)) {
      server.on('connection', (sock: Socket) => serving.track(sock));
      return;
    }
    server.on('connection', (raw: Socket) => {
      this.handshakes.set(raw, Date.now());
      raw.once('close', () => {
        if (this.handshakes.delete(raw)) this.onClosed?.();
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
      serving.track(sock);
    });
    server.on('session', (session: http2.ServerHttp2Session) => {
      this.sessions.add(session);
      session.once('close', () => this.sessions.delete(session));
      // A session that begins while draining serves its first stream, then says GOAWAY.
      if (serving.draining()) session.once('stream', () => session.close());
    });
  }
}
