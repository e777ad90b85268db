// The dashboard's view model: what `nserve top` and the dashboard page show, computed from a server's
// /stats answer (control/status.ts) and the samples taken before it. Pure: the caller takes the samples
// (Samples below) and reads the accept queues; this module reads no clock and no file.
import type { Stats, WorkerView } from '../control/status.js';
import { DURATION_BUCKETS, type Durations } from '../metrics/requests.js';

/** What one sample keeps: enough for request rates (lifetime total and per worker PID) and the charts. */
export interface Sample {
  at: number;
  /** Requests over the server's life (survives worker replacements and hot restarts). */
  requests: number;
  /** Requests served so far by each worker PID now serving. */
  byPid: Record<string, number>;
  inFlight: number;
  /** The workers' RSS summed (bytes), or null when none reported one yet. */
  rss: number | null;
  workingSet: number | null;
  /** Request durations so far (null: requests are not counted). */
  durations: Durations | null;
}

export interface WorkerRow {
  index: number;
  pid: number;
  /** The worker's code generation. */
  generation: number;
  /** The release directory's last path element (a release per directory, as deploy tools lay them out). */
  release: string;
  state: string;
  rss: number | null;
  /** Requests per second since the previous sample (null: no sample of this PID yet). */
  rps: number | null;
  inFlight: number;
  longLived: number;
  loopDelayMs: number | null;
  crashes: number;
}

export interface RestartBar {
  id: number;
  kind: 'hot' | 'phased';
  outcome: 'in-progress' | 'ok' | 'failed';
  rollback: boolean;
  /** From the signal (epoch ms) to done (null: still going). */
  start: number;
  end: number | null;
  /** Hot restarts: how long no code accepted. */
  pauseMs: number | null;
  /** The release it targeted (version, else directory). */
  release: string | null;
  /** The canary's verdict in one line (phased restarts with --canary). */
  canary: string | null;
  error: string | null;
}

export interface SeriesPoint {
  at: number;
  rps: number;
  inFlight: number;
  rss: number | null;
  workingSet: number | null;
  /** The requests answered in the interval: their mean duration (ms), null without any. */
  latencyMs: number | null;
  /** The histogram bound (ms) below which 99% of them took; null without any, or above the last (10 s). */
  p99Ms: number | null;
}

export interface QueueRow {
  bind: string;
  slot: number;
  depth: number;
  limit: number;
}

export interface DashboardView {
  at: number;
  server: {
    pid: number;
    mode: 'single' | 'cluster';
    version: string;
    state: string;
    generation: number;
    uptimeMs: number;
    release: string | null;
    fds: number;
    lifetimeRequests: number;
    crashes: number;
    restarts: { hot: number; phased: number };
  };
  totals: {
    rps: number | null;
    inFlight: number;
    longLived: number;
    /** Over the last interval (SeriesPoint's): null without requests, or where they are not counted. */
    latencyMs: number | null;
    p99Ms: number | null;
  };
  workers: WorkerRow[];
  restarts: RestartBar[];
  /** Oldest first, one point per sample interval. */
  series: SeriesPoint[];
  memory: {
    limited: boolean;
    limit: number;
    workingSet: number;
    headroom: number;
    oomKills: number | null;
    hotRestartFits: boolean | null;
  } | null;
  /** null: not read (a client that cannot see the server's sockets, like `nserve top`). */
  queues: QueueRow[] | null;
}

/** Restarts shown: the latest ones (the history keeps 50). */
export const RESTARTS_SHOWN = 12;

export function sampleOf(stats: Stats, at: number): Sample {
  const byPid: Record<string, number> = {};
  let rss: number | null = null;
  for (const w of stats.workers) {
    byPid[w.pid] = w.requests;
    if (w.rss !== null) rss = (rss ?? 0) + w.rss;
  }
  return {
    at,
    requests: stats.lifetime.requests,
    byPid,
    inFlight: stats.inFlight,
    rss,
    workingSet: stats.memory?.workingSet ?? null,
    durations: stats.durations ?? null,
  };
}

/**
 * The latency of the requests answered between two samples: their mean, and the bound of the histogram
 * bucket that holds the 99th percentile. Counters that went down (a single-mode hot restart counts
 * again from zero) are read as counted from zero.
 */
export function latencyBetween(
  a: Durations | null,
  b: Durations | null,
): { latencyMs: number | null; p99Ms: number | null } {
  if (b === null) return { latencyMs: null, p99Ms: null };
  const from = a === null || b.count < a.count ? null : a;
  const count = b.count - (from?.count ?? 0);
  if (count <= 0) return { latencyMs: null, p99Ms: null };
  const sum = b.sum - (from?.sum ?? 0);
  let seen = 0;
  let p99Ms: number | null = null;
  for (const [i, n] of b.buckets.entries()) {
    seen += n - (from?.buckets[i] ?? 0);
    if (seen >= 0.99 * count) {
      const bound = DURATION_BUCKETS[i];
      p99Ms = bound === undefined ? null : bound * 1000;
      break;
    }
  }
  return { latencyMs: Math.max(0, (sum * 1000) / count), p99Ms };
}

function rate(now: number, before: number, ms: number): number {
  // A counter that went down (a worker replaced under the same PID number, totals of an older image) is
  // no negative rate: it restarted from zero.
  const delta = now >= before ? now - before : now;
  return ms > 0 ? (delta * 1000) / ms : 0;
}

function releaseName(directory: string): string {
  const parts = directory.split('/').filter((p) => p !== '');
  return parts.at(-1) ?? directory;
}

function workerRow(w: WorkerView, prev: Sample | undefined, at: number): WorkerRow {
  const before = prev?.byPid[w.pid];
  return {
    index: w.index,
    pid: w.pid,
    generation: w.phase,
    release: releaseName(w.directory),
    state: w.state,
    rss: w.rss,
    rps: before === undefined || prev === undefined ? null : rate(w.requests, before, at - prev.at),
    inFlight: w.inFlight,
    longLived: w.longLived,
    loopDelayMs: w.eventLoopDelayP99Ms,
    crashes: w.crashes,
  };
}

function restartBar(r: Stats['restarts'][number]): RestartBar {
  const start = Date.parse(r.started);
  const end = r.finished === null ? null : Date.parse(r.finished);
  return {
    id: r.id,
    kind: r.kind,
    outcome: r.outcome,
    rollback: r.rollback === true,
    start,
    end: end === null || Number.isNaN(end) ? null : end,
    pauseMs: r.pauseMs ?? null,
    release: r.release === undefined ? null : (r.release.version ?? r.release.directory),
    canary: r.canary?.summary ?? null,
    error: r.error,
  };
}

/** The series from samples, oldest first: each point's rates against the sample before it. */
export function seriesOf(samples: readonly Sample[]): SeriesPoint[] {
  const out: SeriesPoint[] = [];
  for (let i = 1; i < samples.length; i++) {
    const a = samples[i - 1]!;
    const b = samples[i]!;
    out.push({
      at: b.at,
      rps: rate(b.requests, a.requests, b.at - a.at),
      inFlight: b.inFlight,
      rss: b.rss,
      workingSet: b.workingSet,
      ...latencyBetween(a.durations, b.durations),
    });
  }
  return out;
}

/**
 * The view of `stats`, taken at `at`, given the samples before it (oldest first; the last one, if any, is
 * the previous poll: rates are measured against it) and the accept queues when the caller can read them.
 */
export function buildView(
  stats: Stats,
  at: number,
  samples: readonly Sample[],
  queues: QueueRow[] | null = null,
): DashboardView {
  const prev = samples.at(-1);
  const now = sampleOf(stats, at);
  const started = Date.parse(stats.startedAt);
  const release = stats.release ?? null;
  const memory = stats.memory;
  return {
    at,
    server: {
      pid: stats.pid,
      mode: stats.mode,
      version: stats.version,
      state: stats.state,
      generation: stats.phase,
      uptimeMs: Number.isNaN(started) ? 0 : Math.max(0, at - started),
      release: release === null ? null : (release.version ?? releaseName(release.directory)),
      fds: stats.fdCount,
      lifetimeRequests: stats.lifetime.requests,
      crashes: stats.lifetime.workerCrashes,
      restarts: { ...stats.lifetime.restarts },
    },
    totals: {
      rps: prev === undefined ? null : rate(now.requests, prev.requests, at - prev.at),
      inFlight: stats.inFlight,
      longLived: stats.longLived,
      ...(prev === undefined
        ? { latencyMs: null, p99Ms: null }
        : latencyBetween(prev.durations, now.durations)),
    },
    workers: [...stats.workers].sort((a, b) => a.index - b.index).map((w) => workerRow(w, prev, at)),
    restarts: stats.restarts.slice(-RESTARTS_SHOWN).map(restartBar),
    series: seriesOf([...samples, now]),
    memory:
      memory === undefined
        ? null
        : {
            limited: memory.limited,
            limit: memory.limit,
            workingSet: memory.workingSet,
            headroom: memory.headroom,
            oomKills: memory.oomKills,
            hotRestartFits: memory.hotRestartFits ?? null,
          },
    queues,
  };
}

/** How long the charts look back. */
export const HISTORY_MS = 5 * 60_000;
/** Polls closer together than this share a sample (two pages, or a page and `top`, open at once). */
export const MIN_SAMPLE_MS = 900;

/**
 * The samples a poller keeps: one per poll at most every MIN_SAMPLE_MS, for HISTORY_MS. Taken only when
 * someone polls, so a server nobody watches does nothing.
 */
export class Samples {
  private readonly list: Sample[] = [];

  /** The view of `stats` now; takes a sample unless the last one is too recent. */
  view(stats: Stats, at: number, queues: QueueRow[] | null = null): DashboardView {
    const last = this.list.at(-1);
    const fresh = last === undefined || at - last.at >= MIN_SAMPLE_MS;
    // Rates against the sample before the newest when the newest is too recent: never a 0 ms interval.
    const before = fresh ? this.list : this.list.slice(0, -1);
    const view = buildView(stats, at, before, queues);
    if (fresh) {
      this.list.push(sampleOf(stats, at));
      while (this.list.length > 0 && at - this.list[0]!.at > HISTORY_MS) this.list.shift();
    }
    return view;
  }
}
