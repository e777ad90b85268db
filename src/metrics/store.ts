// The counters the server (single process or master) keeps for itself, so that none goes backwards:
// restarts by kind and result, worker boots and exits, leaks found, and the request totals of workers
// that exited (and the last totals seen from each live one, so its share is kept when it exits). It is
// plain data, handed to the next image across a hot restart (`metrics.totals` in the hand-off), and
// loads no prom-client.
import type { RestartRecord } from '../restart/history.js';
import { type Aggregator, counter, type MetricJson } from './json.js';
import { addTotals, answered, emptyTotals, isTotals, maxTotals, type RequestTotals } from './requests.js';

export type RestartResult = 'ok' | 'abandoned' | 'refused';

/** Upper bounds of the worker boot-time histogram, in seconds. */
export const BOOT_BUCKETS: readonly number[] = [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

export interface StoreState {
  /** `<kind>:<result>` → count. */
  restarts: Record<string, number>;
  /** `ok` | `error` → count. */
  boots: Record<string, number>;
  /** exit reason → count. */
  exits: Record<string, number>;
  /** Boot durations: per bucket (not cumulative, +Inf last), then the sum in seconds. */
  bootSeconds: number[];
  /** leak policy → descriptors found that would have leaked. */
  leaks: Record<string, number>;
  /** worker label → request totals of its processes that are gone. */
  retired: Record<string, RequestTotals>;
  /**
   * The last request totals seen from each live worker process. `final`: the process sent its last
   * report, whose totals are in `retired` already; nothing it says any more is counted.
   */
  live: LiveEntry[];
}

interface LiveEntry {
  pid: number;
  worker: string;
  totals: RequestTotals;
  final?: true;
}

/** What the store knew of a worker process when it exited. */
export interface ExitAccount {
  /** Its last report (sent after its last response) was counted: nothing it answered is missing. */
  final: boolean;
  /** Totals of its last report seen, if any: what was counted for it. */
  totals: RequestTotals | undefined;
}

export class MetricsStore {
  private readonly s: StoreState;
  private readonly live = new Map<number, Omit<LiveEntry, 'pid'>>();

  constructor(state?: StoreState) {
    this.s = state ?? {
      restarts: {},
      boots: {},
      exits: {},
      bootSeconds: new Array<number>(BOOT_BUCKETS.length + 2).fill(0),
      leaks: {},
      retired: {},
      live: [],
    };
    for (const { pid, ...l } of this.s.live) this.live.set(pid, l);
  }

  /** What the previous image handed over; anything of an unknown shape starts from zero. */
  static fromHandoff(value: unknown): MetricsStore {
    return new MetricsStore(readState(value));
  }

  /** Handed to the next image; `own`: this process's request totals (single mode), which the exec resets. */
  toHandoff(own?: { worker: string; totals: RequestTotals }): StoreState {
    const retired = Object.fromEntries(Object.entries(this.s.retired).map(([k, v]) => [k, [...v]]));
    if (own !== undefined) retired[own.worker] = addTotals(retired[own.worker] ?? emptyTotals(), own.totals);
    return {
      ...this.s,
      retired,
      live: [...this.live].map(([pid, l]) => ({ pid, ...l })),
    };
  }

  restartFinished(r: RestartRecord): void {
    const result: RestartResult =
      r.outcome === 'ok'
        ? 'ok'
        : r.strategy === 'refused' || /^descriptors would leak/.test(r.error ?? '')
          ? 'refused'
          : 'abandoned';
    bump(this.s.restarts, `${r.kind}:${result}`);
  }

  workerBooted(seconds: number): void {
    bump(this.s.boots, 'ok');
    const b = this.s.bootSeconds;
    let i = 0;
    while (i < BOOT_BUCKETS.length && seconds > BOOT_BUCKETS[i]!) i++;
    b[i] = (b[i] ?? 0) + 1;
    b[BOOT_BUCKETS.length + 1] = (b[BOOT_BUCKETS.length + 1] ?? 0) + seconds;
  }

  bootFailed(): void {
    bump(this.s.boots, 'error');
  }

  leaksFound(policy: string, n: number): void {
    if (n > 0) bump(this.s.leaks, policy, n);
  }

  /** A live worker's request totals (heartbeat, drained, scrape reply): they only grow. */
  workerSeen(pid: number, worker: string, totals: readonly number[]): void {
    const prev = this.live.get(pid);
    // After its last report, a scrape's answer sent before it (read after) must not count it twice.
    if (prev?.final === true) return;
    this.live.set(pid, { worker, totals: prev === undefined ? [...totals] : maxTotals(prev.totals, totals) });
  }

  /**
   * A worker's last report (after its last response, before its exit): its totals join those of the
   * processes gone now, whoever sees its exit (this image, or the next one after a hot restart's exec).
   */
  workerFinal(pid: number, worker: string, totals: readonly number[]): void {
    this.workerSeen(pid, worker, totals);
    const l = this.live.get(pid);
    if (l === undefined || l.final === true) return;
    this.retire(l.worker, l.totals);
    l.final = true;
  }

  /** A worker process is gone: its last totals join the totals of its worker label (once). */
  workerExited(pid: number, reason: string): ExitAccount {
    bump(this.s.exits, reason);
    const l = this.live.get(pid);
    if (l === undefined) return { final: false, totals: undefined };
    this.live.delete(pid);
    if (l.final !== true) this.retire(l.worker, l.totals);
    return { final: l.final === true, totals: l.totals };
  }

  /**
   * After a hot restart's exec: the workers this image adopted. A process the previous image reported on
   * but did not hand over had exited (its channel closed before the exec): it is gone, not live.
   */
  adopted(pids: readonly number[]): void {
    const kept = new Set(pids);
    for (const [pid, l] of this.live) {
      if (kept.has(pid)) continue;
      this.live.delete(pid);
      if (l.final !== true) this.retire(l.worker, l.totals);
    }
  }

  private retire(worker: string, totals: readonly number[]): void {
    this.s.retired[worker] = addTotals(this.s.retired[worker] ?? emptyTotals(), totals);
  }

  /**
   * Request totals by worker label: exited processes plus the live ones. `fresh` (a scrape's replies)
   * overrides the last seen totals of those processes.
   */
  requestTotals(fresh: ReadonlyMap<string, readonly number[]> = new Map()): Map<string, RequestTotals> {
    const out = new Map<string, RequestTotals>();
    const add = (worker: string, t: readonly number[]): void => {
      out.set(worker, addTotals(out.get(worker) ?? emptyTotals(), t));
    };
    for (const [worker, t] of Object.entries(this.s.retired)) add(worker, t);
    for (const l of this.live.values()) if (l.final !== true) add(l.worker, l.totals);
    for (const [worker, t] of fresh) add(worker, t);
    return out;
  }

  /** Requests answered in all, by every worker process this server had (gone or live). */
  answered(): number {
    let n = 0;
    for (const t of this.requestTotals().values()) n += answered(t);
    return n;
  }

  /** The store's own counters as metrics. */
  metrics(): MetricJson[] {
    const split = (rec: Record<string, number>, a: string, b: string) =>
      Object.entries(rec).map(([k, value]) => {
        const [x = '', y = ''] = k.split(':');
        return { labels: { [a]: x, [b]: y }, value };
      });
    const one = (rec: Record<string, number>, label: string) =>
      Object.entries(rec).map(([k, value]) => ({ labels: { [label]: k }, value }));
    const b = this.s.bootSeconds;
    let cumulative = 0;
    const boot: MetricJson = {
      name: 'nserve_worker_boot_seconds',
      help: 'Time from spawning a worker to its app being loaded',
      type: 'histogram',
      aggregator: 'sum' as Aggregator,
      values: [],
    };
    for (let i = 0; i <= BOOT_BUCKETS.length; i++) {
      cumulative += b[i] ?? 0;
      boot.values.push({
        labels: { le: i < BOOT_BUCKETS.length ? String(BOOT_BUCKETS[i]) : '+Inf' },
        value: cumulative,
        metricName: 'nserve_worker_boot_seconds_bucket',
      });
    }
    boot.values.push({
      labels: {},
      value: b[BOOT_BUCKETS.length + 1] ?? 0,
      metricName: 'nserve_worker_boot_seconds_sum',
    });
    boot.values.push({ labels: {}, value: cumulative, metricName: 'nserve_worker_boot_seconds_count' });
    const restarts = split(this.s.restarts, 'kind', 'result');
    for (const kind of ['hot', 'phased'])
      for (const result of ['ok', 'abandoned', 'refused'])
        if (!restarts.some((r) => r.labels.kind === kind && r.labels.result === result))
          restarts.push({ labels: { kind, result }, value: 0 });
    return [
      counter('nserve_restarts_total', 'Restarts by kind (hot, phased) and result', restarts),
      counter('nserve_worker_boots_total', 'Worker boots by result (ok, error)', one(this.s.boots, 'result')),
      counter('nserve_worker_exits_total', 'Worker exits by reason', one(this.s.exits, 'reason')),
      counter(
        'nserve_leaked_descriptors_total',
        'Descriptors found at hot restarts that would have leaked into the new image, by --leak-policy',
        one(this.s.leaks, 'policy'),
      ),
      boot,
    ];
  }
}

function bump(rec: Record<string, number>, key: string, n = 1): void {
  rec[key] = (rec[key] ?? 0) + n;
}

function readState(v: unknown): StoreState | undefined {
  if (!isObject(v)) return undefined;
  const counts = (x: unknown): x is Record<string, number> =>
    isObject(x) && Object.values(x).every((n) => typeof n === 'number' && Number.isFinite(n) && n >= 0);
  const { restarts, boots, exits, bootSeconds, leaks, retired, live } = v;
  if (!counts(restarts) || !counts(boots) || !counts(exits) || !counts(leaks)) return undefined;
  if (
    !Array.isArray(bootSeconds) ||
    bootSeconds.length !== BOOT_BUCKETS.length + 2 ||
    !bootSeconds.every((n) => typeof n === 'number' && Number.isFinite(n) && n >= 0)
  )
    return undefined;
  if (!isObject(retired) || !Object.values(retired).every(isTotals)) return undefined;
  if (
    !Array.isArray(live) ||
    !live.every(
      (l) =>
        isObject(l) &&
        typeof l.pid === 'number' &&
        Number.isSafeInteger(l.pid) &&
        typeof l.worker === 'string' &&
        isTotals(l.totals) &&
        (l.final === undefined || l.final === true),
    )
  )
    return undefined;
  return {
    restarts,
    boots,
    exits,
    bootSeconds: bootSeconds as number[],
    leaks,
    retired: retired as Record<string, RequestTotals>,
    live: live as StoreState['live'],
  };
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
