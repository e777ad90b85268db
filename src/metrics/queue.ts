// Accept-queue depth of listening TCP sockets: connections the kernel completed and nobody accepted yet,
// which is where clients wait while workers hand over. For a socket in LISTEN state, /proc/net/tcp{,6}
// reports the accept queue length as `rx_queue` (sk_ack_backlog); the socket is found by its inode
// (readlink /proc/self/fd/N → `socket:[inode]`).
//
// The kernel lists listening sockets before any other (its listening hash is walked first), so a read
// stops at the first line that is not in LISTEN state: the cost does not grow with open connections.
import * as fs from 'node:fs';

const LISTEN = '0A';
const CHUNK = 64 * 1024;

/** The socket inode behind a descriptor of this process, or undefined (closed, not a socket). */
export function socketInode(fd: number): number | undefined {
  try {
    const m = /^socket:\[(\d+)\]$/.exec(fs.readlinkSync(`/proc/self/fd/${fd}`));
    return m === null ? undefined : Number(m[1]);
  } catch {
    return undefined;
  }
}

/** inode → accept-queue length, for every listening TCP socket in this network namespace. */
export function listenQueues(): Map<number, number> {
  const out = new Map<number, number>();
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) readListening(file, out);
  return out;
}

function readListening(file: string, out: Map<number, number>): void {
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch {
    return; // no IPv6 in this kernel, or /proc not mounted
  }
  try {
    const buf = Buffer.alloc(CHUNK);
    let rest = '';
    let header = true;
    for (;;) {
      const n = fs.readSync(fd, buf, 0, CHUNK, null);
      if (n === 0) return;
      const lines = (rest + buf.toString('latin1', 0, n)).split('\n');
      rest = lines.pop() ?? '';
      for (const line of lines) {
        if (header) {
          header = false;
          continue;
        }
        // sl local rem st tx_queue:rx_queue tr:when retrnsmt uid timeout inode …
        const f = line.trim().split(/\s+/);
        if (f[3] !== LISTEN) return;
        const rx = Number.parseInt(f[4]?.split(':')[1] ?? '', 16);
        const inode = Number(f[9]);
        if (Number.isFinite(rx) && Number.isFinite(inode)) out.set(inode, rx);
      }
    }
  } finally {
    fs.closeSync(fd);
  }
}

/** The effective listen backlog: what was asked, capped by net.core.somaxconn. */
export function effectiveBacklog(asked: number): number {
  try {
    const max = Number(fs.readFileSync('/proc/sys/net/core/somaxconn', 'utf8').trim());
    return Number.isFinite(max) && max > 0 ? Math.min(asked, max) : asked;
  } catch {
    return asked;
  }
}

export interface QueueSocket {
  bind: string;
  slot: number;
  fd: number;
}

/**
 * Samples the queues between scrapes (every `intervalMs`, once the first scrape asked) so that a scrape
 * reports the deepest queue since the one before, not only the depth at that instant.
 */
export class QueueSampler {
  private readonly inodes = new Map<number, number>();
  private readonly max = new Map<number, number>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly sockets: () => readonly QueueSocket[],
    private readonly intervalMs = 100,
  ) {}

  private inodeOf(fd: number): number | undefined {
    let inode = this.inodes.get(fd);
    if (inode === undefined) {
      inode = socketInode(fd);
      if (inode !== undefined) this.inodes.set(fd, inode);
    }
    return inode;
  }

  private sample(): Map<number, number> {
    const queues = listenQueues();
    for (const s of this.sockets()) {
      const inode = this.inodeOf(s.fd);
      if (inode === undefined) continue;
      const depth = queues.get(inode) ?? 0;
      this.max.set(s.fd, Math.max(this.max.get(s.fd) ?? 0, depth));
    }
    return queues;
  }

  /** Current depth and maximum since the last call, per socket; starts sampling between calls. */
  scrape(): { socket: QueueSocket; depth: number; max: number }[] {
    const queues = this.sample();
    const out = this.sockets().flatMap((socket) => {
      const inode = this.inodeOf(socket.fd);
      if (inode === undefined) return [];
      const depth = queues.get(inode) ?? 0;
      return [{ socket, depth, max: Math.max(depth, this.max.get(socket.fd) ?? 0) }];
    });
    this.max.clear();
    if (this.timer === undefined) {
      this.timer = setInterval(() => {
        try {
          this.sample();
        } catch {
          // /proc unreadable for a moment (EMFILE): the next sample will do
        }
      }, this.intervalMs);
      this.timer.unref();
    }
    return out;
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }
}
