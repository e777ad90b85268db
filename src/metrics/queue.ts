// Accept-queue depth of listening TCP sockets: connections the kernel completed and nobody accepted yet,
// which is where clients wait while workers hand over. Read with one getsockopt(TCP_INFO) per socket
// (native.listenQueue): constant time, however many connections the host has.
//
// It used to be `rx_queue` of the socket's line in /proc/net/tcp{,6}. That read walks every TCP socket of
// the host to produce the file (a host with 56k sockets in TIME_WAIT: 5-20 ms per read of an empty
// /proc/net/tcp6), and sampling every 100 ms took 64% of a single-mode server's CPU under load (bench
// `metrics`, docs/benchmarks.md).
import * as native from '../native/index.js';

export interface QueueSocket {
  bind: string;
  slot: number;
  fd: number;
}

export interface QueueReading {
  socket: QueueSocket;
  depth: number;
  /** Deepest queue since the previous scrape. */
  max: number;
  /** The queue's limit: the backlog of the last listen(), capped by net.core.somaxconn. */
  limit: number;
}

function read(fd: number): native.ListenQueue | null {
  try {
    return native.listenQueue(fd);
  } catch {
    return null; // closed meanwhile (EBADF): a slot removed from the config
  }
}

/**
 * Samples the queues between scrapes (every `intervalMs`, once the first scrape asked) so that a scrape
 * reports the deepest queue since the one before, not only the depth at that instant.
 */
export class QueueSampler {
  private readonly max = new Map<number, number>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly sockets: () => readonly QueueSocket[],
    private readonly intervalMs = 100,
  ) {}

  private sample(): void {
    for (const s of this.sockets()) {
      const q = read(s.fd);
      if (q !== null) this.max.set(s.fd, Math.max(this.max.get(s.fd) ?? 0, q.depth));
    }
  }

  /** Current depth and maximum since the last call, per socket; starts sampling between calls. */
  scrape(): QueueReading[] {
    const out = this.sockets().flatMap((socket) => {
      const q = read(socket.fd);
      if (q === null) return [];
      return [
        { socket, depth: q.depth, max: Math.max(q.depth, this.max.get(socket.fd) ?? 0), limit: q.limit },
      ];
    });
    this.max.clear();
    this.timer ??= setInterval(() => this.sample(), this.intervalMs);
    this.timer.unref();
    return out;
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }
}
