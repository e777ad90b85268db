// Request counting in the process that serves (single mode, each worker): the per-request hot path, so
// it is a few array increments and no prom-client (which is loaded only when something scrapes).
//
// The counts travel as one flat vector (`RequestTotals`): a worker sends it in its heartbeat and in
// `drained` (so the master knows a worker's last totals when it exits), the master adds the totals of
// exited workers, and a hot restart hands them to the next image. Layout, fixed:
//   [0..4]   requests by status class 1xx..5xx
//   [5..16]  request durations per histogram bucket (not cumulative; the last is +Inf)
//   [17]     sum of the durations, in seconds
import type { MetricJson } from './json.js';

/** Upper bounds of the duration histogram, in seconds (Prometheus' client defaults). */
export const DURATION_BUCKETS: readonly number[] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const CLASSES = 5;
const BUCKETS = DURATION_BUCKETS.length + 1;
export const TOTALS_LENGTH = CLASSES + BUCKETS + 1;
const SUM = CLASSES + BUCKETS;
/** The one entry of the totals that is not a count: the sum of the durations, in seconds. */
export const TOTALS_SUM_INDEX = SUM;

export type RequestTotals = number[];

/** When a response began (performance.now()), kept on the response object itself: the hot path. */
export const STARTED = Symbol('nserve.metrics.started');
export type Timed = { [STARTED]?: number };

export function emptyTotals(): RequestTotals {
  return new Array<number>(TOTALS_LENGTH).fill(0);
}

export function isTotals(v: unknown): v is RequestTotals {
  return (
    Array.isArray(v) &&
    v.length === TOTALS_LENGTH &&
    v.every((n) => typeof n === 'number' && Number.isFinite(n) && n >= 0)
  );
}

/** Requests answered (every status class) in a totals vector. */
export function answered(t: readonly number[]): number {
  let n = 0;
  for (let c = 0; c < CLASSES; c++) n += t[c] ?? 0;
  return n;
}

/** a += b, element by element. */
export function addTotals(a: RequestTotals, b: readonly number[]): RequestTotals {
  for (let i = 0; i < TOTALS_LENGTH; i++) a[i] = (a[i] ?? 0) + (b[i] ?? 0);
  return a;
}

/** The later of two reports of the same process (each element only grows). */
export function maxTotals(a: readonly number[], b: readonly number[]): RequestTotals {
  return Array.from({ length: TOTALS_LENGTH }, (_, i) => Math.max(a[i] ?? 0, b[i] ?? 0));
}

/** This process's request counters. `on` is set once at start-up when metrics are configured. */
class RequestCounter {
  on = false;
  readonly totals: RequestTotals = emptyTotals();

  /** A response ended (or was aborted): `startedMs` is performance.now() when it began. */
  record(status: number, startedMs: number): void {
    const t = this.totals;
    const cls = (status / 100) | 0;
    if (cls >= 1 && cls <= CLASSES) t[cls - 1]!++;
    const seconds = (performance.now() - startedMs) / 1000;
    let b = 0;
    while (b < DURATION_BUCKETS.length && seconds > DURATION_BUCKETS[b]!) b++;
    t[CLASSES + b]!++;
    t[SUM]! += seconds;
  }

  snapshot(): RequestTotals {
    return [...this.totals];
  }
}

export const REQUESTS = new RequestCounter();

/** The request durations of a totals vector: how many, their sum (seconds), the count per bucket (the last +Inf). */
export interface Durations {
  count: number;
  sum: number;
  /** Not cumulative; upper bounds DURATION_BUCKETS, then +Inf. */
  buckets: number[];
}

export function durationsOf(t: readonly number[]): Durations {
  const buckets = t.slice(CLASSES, CLASSES + BUCKETS);
  return { count: buckets.reduce((a, b) => a + b, 0), sum: t[SUM] ?? 0, buckets };
}

/** The request counters as metrics, one `worker` label value per vector. */
export function totalsMetrics(byWorker: ReadonlyMap<string, readonly number[]>): MetricJson[] {
  const requests: MetricJson = {
    name: 'nserve_http_requests_total',
    help: 'HTTP requests answered, by status class and worker (totals of exited workers included)',
    type: 'counter',
    aggregator: 'sum',
    values: [],
  };
  const duration: MetricJson = {
    name: 'nserve_http_request_duration_seconds',
    help: 'Time from a request to the end of its response, by worker',
    type: 'histogram',
    aggregator: 'sum',
    values: [],
  };
  for (const [worker, t] of byWorker) {
    for (let c = 0; c < CLASSES; c++)
      requests.values.push({ labels: { worker, code: `${c + 1}xx` }, value: t[c] ?? 0 });
    let cumulative = 0;
    for (let b = 0; b < BUCKETS; b++) {
      cumulative += t[CLASSES + b] ?? 0;
      const le = b < DURATION_BUCKETS.length ? String(DURATION_BUCKETS[b]) : '+Inf';
      duration.values.push({
        labels: { worker, le },
        value: cumulative,
        metricName: 'nserve_http_request_duration_seconds_bucket',
      });
    }
    duration.values.push({
      labels: { worker },
      value: t[SUM] ?? 0,
      metricName: 'nserve_http_request_duration_seconds_sum',
    });
    duration.values.push({
      labels: { worker },
      value: cumulative,
      metricName: 'nserve_http_request_duration_seconds_count',
    });
  }
  return [requests, duration];
}
