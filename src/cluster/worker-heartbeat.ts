// A worker's check-in: every HEARTBEAT_INTERVAL_MS it tells the master its requests, in-flight, event
// loop delay, RSS and long-lived connections (the master's health checks and --worker-max-memory read
// them), and, when requests are counted, its totals. The last one is sent once a drain has ended.
import { REQUESTS } from '../metrics/requests.js';
import type { AppServer } from '../server/index.js';
import { type FromWorker, HEARTBEAT_INTERVAL_MS } from './protocol.js';

// The histogram records whole timer intervals (≥ the resolution): the delay is what exceeds it.
const ELD_RESOLUTION_MS = 20;

/** Sub-buckets per power of two: 3 significant digits, the precision of Node's own histogram. */
const SUB_BUCKETS = 1024;

/**
 * The event loop's delay, sampled as perf_hooks' `monitorEventLoopDelay` samples it: a timer every
 * ELD_RESOLUTION_MS records the nanoseconds since its previous firing. The samples go into a sparse
 * histogram with the precision of Node's (HDR, 3 significant digits) in which only the buckets hit
 * exist, a few dozen: Node's keeps ~360 KB of counts, which every `reset()` writes whole, in each worker
 * (docs/benchmarks.md, "Footprint"). `percentile` answers as HDR does, the highest value of its bucket.
 */
export class LoopDelay {
  private readonly counts = new Map<number, number>();
  private total = 0;
  private last = 0n;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly resolutionMs: number) {}

  enable(): void {
    if (this.timer !== undefined) return;
    this.timer = setInterval(() => {
      const now = process.hrtime.bigint();
      if (this.last !== 0n) this.record(Number(now - this.last)); // from the second firing on, as Node's
      this.last = now;
    }, this.resolutionMs);
    this.timer.unref();
  }

  record(ns: number): void {
    const key = bucketOf(ns);
    this.counts.set(key, (this.counts.get(key) ?? 0) + 1);
    this.total++;
  }

  /** The value below which `p` % of the samples fall (0 without samples), in nanoseconds. */
  percentile(p: number): number {
    if (this.total === 0) return 0;
    const rank = Math.max(1, Math.floor((p / 100) * this.total + 0.5)); // hdr_value_at_percentile's
    let seen = 0;
    for (const key of [...this.counts.keys()].sort((a, b) => a - b)) {
      seen += this.counts.get(key)!;
      if (seen >= rank) return highestIn(key);
    }
    return 0; // not reached: the counts add up to the total
  }

  reset(): void {
    this.counts.clear();
    this.total = 0;
  }
}

/** A bucket's key, increasing with the value: the value itself below 2 × SUB_BUCKETS ns, then log-linear. */
function bucketOf(ns: number): number {
  const v = Math.max(1, Math.floor(ns));
  const shift = Math.max(0, Math.floor(Math.log2(v)) - Math.log2(SUB_BUCKETS));
  return shift * 2 * SUB_BUCKETS + Math.floor(v / 2 ** shift);
}

function highestIn(key: number): number {
  const shift = Math.floor(key / (2 * SUB_BUCKETS));
  const sub = key - shift * 2 * SUB_BUCKETS;
  return (sub + 1) * 2 ** shift - 1;
}

export class Heartbeat {
  private readonly eld = new LoopDelay(ELD_RESOLUTION_MS);
  private timer: NodeJS.Timeout | undefined;
  private rss = 0;

  constructor(
    private readonly server: () => AppServer | undefined,
    private readonly send: (msg: FromWorker) => void,
  ) {}

  start(): void {
    this.eld.enable();
    this.timer = setInterval(() => this.beat(), HEARTBEAT_INTERVAL_MS);
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /** The request totals, when requests are counted (metrics/requests.ts). */
  totals(): { totals?: number[] } {
    return REQUESTS.on ? { totals: REQUESTS.snapshot() } : {};
  }

  beat(options: { final?: true } = {}): void {
    try {
      this.rss = process.memoryUsage.rss();
    } catch {
      // EMFILE (it reads /proc): keep the last figure; serving matters more than the stat
    }
    const server = this.server();
    this.send({
      t: 'heartbeat',
      requests: server?.requests ?? 0,
      inFlight: server?.inFlight ?? 0,
      eventLoopDelayMs:
        Math.round(Math.max(0, this.eld.percentile(99) - ELD_RESOLUTION_MS * 1e6) / 1e4) / 100,
      rss: this.rss,
      longLived: server?.longLivedOpen() ?? 0,
      connections: server?.connectionCount() ?? 0,
      ...this.totals(),
      ...options,
    });
    this.eld.reset();
  }
}
