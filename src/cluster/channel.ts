// A message channel over a SOCK_SEQPACKET descriptor: JSON datagrams with optional descriptors attached.
// Receiving never blocks the event loop: a uv_poll watcher wakes us and we drain recvmsg until EAGAIN.
import * as native from '../native.js';

export interface ChannelHandlers<In> {
  message(msg: In, fds: number[]): void;
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
      if (readable) this.drainIncoming();
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
      this.trySend(next.data, next.fds);
      if (this.retryTimer !== undefined) return;
    }
  }

  private drainIncoming(): void {
    while (!this.closed) {
      let got: { data: Buffer; fds: number[] } | null;
      try {
        got = native.recvFds(this.fd);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ECONNRESET') this.onClosed();
        else throw err;
        return;
      }
      if (got === null) return;
      if (got.data.length === 0 && got.fds.length === 0) {
        this.onClosed();
        return;
      }
      this.handlers.message(JSON.parse(got.data.toString('utf8')) as In, got.fds);
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
