// A worker's check-in: every HEARTBEAT_INTERVAL_MS it tells the master its requests, in-flight, event
// loop delay, RSS and long-lived connections (the master's health checks and --worker-max-memory read
// them), and, when requests are counted, its totals. The last one is sent once a drain has ended.
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { REQUESTS } from '../metrics/requests.js';
import type { AppServer } from '../server/index.js';
import { type FromWorker, HEARTBEAT_INTERVAL_MS } from './protocol.js';

// The histogram records whole timer intervals (≥ the resolution): the delay is what exceeds it.
const ELD_RESOLUTION_MS = 20;

export class Heartbeat {
  private readonly eld = monitorEventLoopDelay({ resolution: ELD_RESOLUTION_MS });
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
