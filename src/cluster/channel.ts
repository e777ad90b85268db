// A message channel over a SOCK_SEQPACKET descriptor: JSON datagrams with optional descriptors attached.
// Receiving never blocks the event loop: a uv_poll watcher wakes us and we drain recvmsg until EAGAIN.
//
// Nothing that arrives can throw out of here (a throw inside the libuv callback would take the process
// down): a datagram that is too large, lost descriptors (MSG_CTRUNC), bytes that are not JSON or a value
// `parse` rejects are reported to `invalid`, and reading goes on.
//
// When the peer goes away, what it sent before going is still queued on our end and is read before the
// channel closes, however we learn of it: a hang-up, a failed send (EPIPE, ECONNRESET), or a socket error
// (the peer exited with our datagrams unread, e.g. a metrics request: libuv reports that POLLERR as
// EBADF). A worker's last words are its `drained` and its final request totals.
import { errorCode, errorMessage, NserveError } from '../errors.js';
import * as native from '../native/index.js';

export interface ChannelHandlers<In> {
  /** Turn a received JSON value into a message, or say why it is not one. */
  parse(value: unknown): In | string;
  message(msg: In, fds: number[]): void;
  /** Something arrived that is not a valid message (any descriptors with it are closed already). */
  invalid(reason: string): void;
  /** The peer closed its end (process exit). Called once. */
  close(): void;
}

export class Channel<In, Out> {
  private watcher: native.Watcher | undefined;
  private closed = false;
  private readonly pending: { data: Buffer; fds: readonly number[] }[] = [];
  private retryTimer: NodeJS.Timeout | undefined;
  /** The peer is gone: read what is queued, then close. */
  private gone = false;
  /** Inside drainIncoming (a handler's send can learn that the peer is gone). */
  private reading = false;
  private flushed: (() => void)[] = [];

  constructor(
    readonly fd: number,
    private readonly handlers: ChannelHandlers<In>,
  ) {
    this.watch();
  }

  private watch(): void {
    this.watcher = native.watchReadable(this.fd, (readable, hangup, error) => {
      // A hang-up can be reported without `readable`, and a socket error (POLLERR, which libuv reports as
      // EBADF) with neither, while datagrams are still queued: the peer's last words.
      if (hangup || error !== null) this.peerGone('now');
      else if (readable) this.drainIncoming();
    });
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** Do not keep the process alive for this channel alone. */
  unref(): void {
    this.watcher?.unref();
  }

  send(msg: Out, fds: readonly number[] = []): boolean {
    if (this.closed || this.gone) return false;
    const data = Buffer.from(JSON.stringify(msg));
    if (data.length > native.MAX_PAYLOAD) {
      throw new NserveError(
        'ERR_NSERVE_PROTOCOL',
        `channel message of ${data.length} bytes exceeds ${native.MAX_PAYLOAD}`,
      );
    }
    if (this.pending.length > 0) {
      this.pending.push({ data, fds });
      return true;
    }
    return this.trySend(data, fds);
  }

  private trySend(data: Buffer, fds: readonly number[]): boolean {
    try {
      native.sendFds(this.fd, fds, data);
      return true;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EAGAIN') {
        // The peer's receive buffer is full: keep order, retry shortly.
        this.pending.unshift({ data, fds });
        this.retryTimer ??= setTimeout(() => this.flushPending(), 5);
        return true;
      }
      if (code === 'EPIPE' || code === 'ECONNRESET' || code === 'ENOTCONN') {
        this.peerGone('soon');
        return false;
      }
      throw err;
    }
  }

  /** Messages accepted by `send` that wait for room in the peer's queue. */
  get unsent(): number {
    return this.pending.length;
  }

  /**
   * Resolves once every message accepted by `send` has reached the peer's queue (or the channel closed),
   * at most `timeoutMs` later. Before a process exits: a message still waiting for room would be lost.
   */
  flush(timeoutMs: number): Promise<void> {
    if (this.pending.length === 0 || this.closed) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(done, timeoutMs);
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.flushed.push(done);
    });
  }

  private notifyFlushed(): void {
    const waiting = this.flushed;
    this.flushed = [];
    for (const done of waiting) done();
  }

  private flushPending(): void {
    this.retryTimer = undefined;
    while (this.pending.length > 0 && !this.closed && !this.gone) {
      const next = this.pending.shift()!;
      try {
        this.trySend(next.data, next.fds);
      } catch (err) {
        // Runs from a timer: an unexpected send error must not escape. EBADF names a descriptor that is
        // not open: one attached to the message (it cannot be sent, ever: dropped, the peer asks again for
        // what it misses) or our own end (gone: closed without closing its number again).
        if (errorCode(err) === 'EBADF') {
          if (!isOpen(this.fd)) {
            this.onClosed({ descriptor: 'gone' });
            return;
          }
          continue;
        }
        this.peerGone('now');
        return;
      }
      if (this.retryTimer !== undefined) return;
    }
    if (this.pending.length === 0) this.notifyFlushed();
  }

  /**
   * The peer is gone (or unreachable): read what it sent before it went, then close. `soon` when a send
   * found out: its caller does not expect the peer's messages (or the close) before `send` returns.
   */
  private peerGone(when: 'now' | 'soon'): void {
    if (this.closed) return;
    this.gone = true;
    // Inside drainIncoming (a handler's send failed), its loop reads the rest and closes.
    if (this.reading) return;
    if (when === 'now') this.drainIncoming();
    else setImmediate(() => this.drainIncoming());
  }

  private drainIncoming(): void {
    this.reading = true;
    try {
      this.readQueued();
    } finally {
      this.reading = false;
    }
  }

  private readQueued(): void {
    // Bounded: a flood is read in slices, between which the loop serves everything else. A peer that is
    // gone sends no more: read what it left (its queue holds a few datagrams), then close.
    let reset = false;
    for (let n = 0; n < (this.gone ? 4096 : 256) && !this.closed; n++) {
      let got: { data: Buffer; fds: number[] } | null;
      try {
        got = native.recvFds(this.fd);
      } catch (err) {
        const code = errorCode(err);
        if (code === 'ECONNRESET' && !reset) {
          // The peer exited without reading what we sent it. The kernel reports that error once, before
          // the datagrams still queued for us (a worker's last `drained`): read those, then close.
          reset = true;
          continue;
        }
        if (code === 'EBADF') {
          // Our descriptor is not open any more. Closing its number again would close whatever took
          // that number since (another worker's channel, a slot): end the channel without a close.
          this.onClosed({ descriptor: 'gone' });
          return;
        }
        if (code === 'ECONNRESET' || code === 'ENOTCONN') {
          this.onClosed();
          return;
        }
        // EMSGSIZE: over 64 KiB, or descriptors dropped (MSG_CTRUNC); the datagram is consumed either way.
        this.handlers.invalid(
          code === 'EMSGSIZE'
            ? 'a message too large, or with descriptors that could not be received (EMSGSIZE)'
            : `receiving failed: ${errorMessage(err)}`,
        );
        continue;
      }
      if (got === null) {
        if (reset || this.gone) this.onClosed();
        return;
      }
      if (got.data.length === 0 && got.fds.length === 0) {
        this.onClosed();
        return;
      }
      let value: unknown;
      try {
        value = JSON.parse(got.data.toString('utf8'));
      } catch {
        closeAll(got.fds);
        this.handlers.invalid(`not JSON (${got.data.length} bytes)`);
        continue;
      }
      const msg = this.handlers.parse(value);
      if (typeof msg === 'string') {
        closeAll(got.fds);
        this.handlers.invalid(msg);
        continue;
      }
      this.handlers.message(msg, got.fds);
    }
    if (this.gone) this.onClosed();
  }

  private onClosed(how: { descriptor: 'open' | 'gone' } = { descriptor: 'open' }): void {
    if (this.shutdown(how)) this.handlers.close();
  }

  /**
   * Stop watching (before the close: libuv must not poll a closed number), then close our end, once;
   * true the first time. `gone`: the descriptor is known closed already, and is not closed again.
   */
  private shutdown(how: { descriptor: 'open' | 'gone' } = { descriptor: 'open' }): boolean {
    this.stopWatching();
    clearTimeout(this.retryTimer);
    if (this.closed) return false;
    this.closed = true;
    if (how.descriptor === 'open') native.close(this.fd);
    this.notifyFlushed();
    return true;
  }

  private stopWatching(): void {
    this.watcher?.stop();
    this.watcher = undefined;
  }

  /** Read what is queued now (the peer exited: what it sent last must not be dropped with the channel). */
  readPending(): void {
    if (!this.closed) this.drainIncoming();
  }

  /** Close our end without calling the close handler. */
  close(): void {
    this.shutdown();
  }

  /** Stop watching but keep the descriptor open (it is handed to the next image on hot restart). */
  detach(): void {
    this.stopWatching();
  }

  /** Watch again after `detach` (the hand-off did not happen). */
  reattach(): void {
    if (!this.closed && this.watcher === undefined) this.watch();
  }
}

function isOpen(fd: number): boolean {
  try {
    native.getCloexec(fd);
    return true;
  } catch {
    return false;
  }
}

function closeAll(fds: readonly number[]): void {
  for (const fd of fds) {
    try {
      native.close(fd);
    } catch {
      // already closed
    }
  }
}
