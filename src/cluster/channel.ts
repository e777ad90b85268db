// A message channel over a SOCK_SEQPACKET descriptor: JSON datagrams with optional descriptors attached.
// Receiving never blocks the event loop: a uv_poll watcher wakes us and we drain recvmsg until EAGAIN.
//
// Nothing that arrives can throw out of here (a throw inside the libuv callback would take the process
// down): a datagram that is too large, lost descriptors (MSG_CTRUNC), bytes that are not JSON or a value
// `parse` rejects are reported to `invalid`, and reading goes on.
import { errorCode, errorMessage, NserveError } from '../errors.js';
import * as native from '../native.js';

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

  constructor(
    readonly fd: number,
    private readonly handlers: ChannelHandlers<In>,
  ) {
    this.watch();
  }

  private watch(): void {
    this.watcher = native.watchReadable(this.fd, (readable, hangup, error) => {
      // A hang-up can be reported without `readable` while datagrams are still queued (the peer's last
      // words: a worker's `drained` with its final totals): read them before closing.
      if (readable || hangup) this.drainIncoming();
      if (hangup || error !== null) this.onClosed();
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
    if (this.closed) return false;
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
        this.onClosed();
        return false;
      }
      throw err;
    }
  }

  private flushPending(): void {
    this.retryTimer = undefined;
    while (this.pending.length > 0 && !this.closed) {
      const next = this.pending.shift()!;
      try {
        this.trySend(next.data, next.fds);
      } catch {
        // Runs from a timer: an unexpected send error must not escape; the peer is unreachable.
        this.onClosed();
        return;
      }
      if (this.retryTimer !== undefined) return;
    }
  }

  private drainIncoming(): void {
    // Bounded: a flood is read in slices, between which the loop serves everything else.
    let reset = false;
    for (let n = 0; n < 256 && !this.closed; n++) {
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
        if (code === 'ECONNRESET' || code === 'ENOTCONN' || code === 'EBADF') {
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
        if (reset) this.onClosed();
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
  }

  private onClosed(): void {
    if (this.shutdown()) this.handlers.close();
  }

  /** Stop watching and close our end; true the first time. */
  private shutdown(): boolean {
    this.stopWatching();
    clearTimeout(this.retryTimer);
    if (this.closed) return false;
    this.closed = true;
    native.close(this.fd);
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

function closeAll(fds: readonly number[]): void {
  for (const fd of fds) {
    try {
      native.close(fd);
    } catch {
      // already closed
    }
  }
}
