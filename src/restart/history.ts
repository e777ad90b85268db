// The restart history: every restart's record, the canary's verdicts and the lifetime totals, which
// survive hot restarts (handed to the new image: restart/handoff.ts). control/status.ts shows them.
import { Deploys, readTargetFields } from '../deploy/record.js';
import type { ReleaseRef } from '../deploy/release.js';
import { RESTART_STRATEGIES, type RestartStrategy } from '../memory/fit.js';

export type RestartKind = 'hot' | 'phased';
export type RestartOutcome = 'in-progress' | 'ok' | 'failed';

export interface RestartRecord {
  id: number;
  kind: RestartKind;
  started: string;
  finished: string | null;
  outcome: RestartOutcome;
  error: string | null;
  /** Descriptors open in the server (master) once the restart finished. */
  fds?: number;
  /** Descriptors open in each worker once the restart finished (cluster). */
  workerFds?: number[];
  /** Hot restart: when no code accepted any more (single mode: before the exec), and for how long. */
  pausedAt?: number;
  pauseMs?: number;
  /** The release the restart targeted (resolved directory and the version it names: deploy/record.ts). */
  release?: ReleaseRef;
  /** The release that served when it began. */
  previous?: ReleaseRef;
  /** A rollback (`ctl rollback`): onto the pinned previous release, not the re-resolved --directory. */
  rollback?: boolean;
  /**
   * Cluster: how the restart fitted in the memory budget (memory/fit.ts): `hot` (all new workers beside
   * the old ones), `staged` (some, the rest after the old ones drained), `phased` (a hot restart run as a
   * phased one: --restart-overflow phased), `refused`; `memory` says why, with the numbers.
   */
  strategy?: RestartStrategy;
  memory?: string;
  /** Staged: the new workers booted beside the old ones before those drained. */
  preboot?: number;
  /** A phased restart with `--canary`: the verdict, in numbers (the same line is in `error` if it failed). */
  canary?: CanaryRecord;
}

/** Requests and 5xx answers over a canary's window. */
export interface CanaryCounts {
  requests: number;
  errors: number;
}

/**
 * A canary's verdict (cluster/canary.ts). `canary`, `old`, `threshold`, `z` and `windowMs` are absent
 * when it failed without being measured (it crashed or asked to leave during its window).
 */
export interface CanaryRecord {
  ok: boolean;
  /** Fewer canary requests than the minimum: the rollout went on, unjudged. */
  inconclusive: boolean;
  canary?: CanaryCounts;
  old?: CanaryCounts;
  /** The old workers answered enough requests to be the baseline (else their rate is taken as 0). */
  baseline?: boolean;
  /** The canary's 5xx rate (0–1) above which it fails, when the difference is significant. */
  threshold?: number;
  z?: number;
  windowMs?: number;
  summary: string;
}

const KEEP = 50;

/**
 * Counts for the life of the server (its PID), across worker replacements and hot restarts: requests
 * served by processes that are gone (exited workers; in single mode, the images before each exec),
 * worker crashes (in all and by worker index), and restarts by kind. Handed over across an exec
 * (`totals` in restart/handoff.ts).
 */
export interface LifetimeTotals {
  requests: number;
  crashes: number;
  crashesByWorker: Record<string, number>;
  restarts: Record<RestartKind, number>;
  /** Workers replaced for staying over --worker-max-memory. */
  memoryReplacements: number;
  /**
   * The cgroup's OOM-kill count as far as the master has explained it (memory/oom.ts): handed over, so
   * that a kill during a hot restart's exec is still told apart from the kills before it.
   */
  cgroupOomKillsSeen?: number;
}

function emptyTotals(): LifetimeTotals {
  return {
    requests: 0,
    crashes: 0,
    crashesByWorker: {},
    restarts: { hot: 0, phased: 0 },
    memoryReplacements: 0,
  };
}

/** The totals handed over by the previous image; anything of an unknown shape counts from zero. */
export function readTotals(v: unknown): LifetimeTotals {
  const out = emptyTotals();
  if (typeof v !== 'object' || v === null) return out;
  const o = v as Record<string, unknown>;
  const count = (x: unknown): number => (typeof x === 'number' && Number.isSafeInteger(x) && x >= 0 ? x : 0);
  out.requests = count(o.requests);
  out.crashes = count(o.crashes);
  out.memoryReplacements = count(o.memoryReplacements);
  if (typeof o.cgroupOomKillsSeen === 'number') out.cgroupOomKillsSeen = count(o.cgroupOomKillsSeen);
  if (typeof o.crashesByWorker === 'object' && o.crashesByWorker !== null)
    for (const [k, n] of Object.entries(o.crashesByWorker))
      if (/^\d+$/.test(k)) out.crashesByWorker[k] = count(n);
  if (typeof o.restarts === 'object' && o.restarts !== null) {
    const r = o.restarts as Record<string, unknown>;
    out.restarts = { hot: count(r.hot), phased: count(r.phased) };
  }
  return out;
}

export class RestartHistory {
  readonly totals: LifetimeTotals;
  /** Which release serves, which one a rollback returns to, the mixed-version alarm. */
  readonly deploys: Deploys;
  /** Told of every verdict (the metrics store counts restarts by kind and result). */
  onFinish: ((record: RestartRecord) => void) | undefined;

  constructor(
    readonly records: RestartRecord[] = [],
    totals?: LifetimeTotals,
    deploys?: Deploys,
  ) {
    this.totals = totals ?? emptyTotals();
    this.deploys = deploys ?? new Deploys();
  }

  /**
   * The history handed over by the previous image (records of an unknown shape are dropped), with the
   * deploy state (`releases`; `servedBefore`: the directory that image served, for an older nserve's).
   */
  static fromHandoff(
    records: readonly unknown[] | undefined,
    totals?: unknown,
    releases?: unknown,
    servedBefore?: string,
  ): RestartHistory {
    return new RestartHistory(
      (records ?? [])
        .filter(isRecord)
        .map((r) => ({
          ...r,
          ...readTargetFields(r),
          canary: readCanaryRecord(r.canary),
          ...readFitFields(r),
        }))
        .slice(-KEEP),
      readTotals(totals),
      Deploys.fromHandoff(releases, servedBefore),
    );
  }

  toHandoff(): RestartRecord[] {
    return this.records.slice(-KEEP);
  }

  /** The totals for the next image; `servedHere`: requests this image served itself (single mode). */
  totalsToHandoff(servedHere = 0): LifetimeTotals {
    return { ...this.totals, requests: this.totals.requests + servedHere };
  }

  /** A worker is gone: its requests join the lifetime total; `crashed`: it died without being asked to. */
  workerGone(index: number, requests: number, crashed: boolean): void {
    this.totals.requests += requests;
    if (crashed) this.workerCrashed(index);
  }

  workerCrashed(index: number): void {
    this.totals.crashes++;
    this.totals.crashesByWorker[index] = (this.totals.crashesByWorker[index] ?? 0) + 1;
  }

  begin(kind: RestartKind): RestartRecord {
    this.totals.restarts[kind]++;
    const id = (this.records.at(-1)?.id ?? 0) + 1;
    const record: RestartRecord = {
      id,
      kind,
      started: new Date().toISOString(),
      finished: null,
      outcome: 'in-progress',
      error: null,
    };
    this.records.push(record);
    if (this.records.length > KEEP) this.records.splice(0, this.records.length - KEEP);
    return record;
  }

  /** Descriptor counts after each finished restart, oldest first. */
  fdCounts(): number[] {
    return this.records.flatMap((r) => (r.fds === undefined ? [] : [r.fds]));
  }

  /** The restart that is still in progress (e.g. the one that exec'd into this image). */
  current(): RestartRecord | undefined {
    const last = this.records.at(-1);
    return last?.outcome === 'in-progress' ? last : undefined;
  }

  finish(record: RestartRecord | undefined, outcome: 'ok' | 'failed', error?: string): void {
    if (record === undefined) return;
    record.outcome = outcome;
    record.finished = new Date().toISOString();
    record.error = error ?? null;
    this.deploys.settle(record);
    this.onFinish?.(record);
  }
}

/** The memory plan's fields of a record handed over (memory/fit.ts): only well-formed ones are kept. */
function readFitFields(r: object): Pick<RestartRecord, 'strategy' | 'memory' | 'preboot'> {
  const o = r as Record<string, unknown>;
  const strategy = RESTART_STRATEGIES.find((s) => s === o.strategy);
  const preboot = count(o.preboot);
  return {
    strategy,
    memory: typeof o.memory === 'string' ? o.memory : undefined,
    preboot,
  };
}

const count = (v: unknown): number | undefined =>
  typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 ? v : undefined;
const finite = (v: unknown): number | undefined =>
  typeof v === 'number' && Number.isFinite(v) ? v : undefined;

function readCounts(v: unknown): CanaryCounts | undefined {
  if (typeof v !== 'object' || v === null) return undefined;
  const o = v as Record<string, unknown>;
  const requests = count(o.requests);
  const errors = count(o.errors);
  return requests === undefined || errors === undefined ? undefined : { requests, errors };
}

/** A canary verdict handed over by the previous image: only well-formed fields are kept. */
export function readCanaryRecord(v: unknown): CanaryRecord | undefined {
  if (typeof v !== 'object' || v === null) return undefined;
  const o = v as Record<string, unknown>;
  if (typeof o.ok !== 'boolean' || typeof o.summary !== 'string') return undefined;
  const out: CanaryRecord = { ok: o.ok, inconclusive: o.inconclusive === true, summary: o.summary };
  const canary = readCounts(o.canary);
  const old = readCounts(o.old);
  if (canary !== undefined) out.canary = canary;
  if (old !== undefined) out.old = old;
  if (typeof o.baseline === 'boolean') out.baseline = o.baseline;
  const threshold = finite(o.threshold);
  const z = finite(o.z);
  const windowMs = count(o.windowMs);
  if (threshold !== undefined) out.threshold = threshold;
  if (z !== undefined) out.z = z;
  if (windowMs !== undefined) out.windowMs = windowMs;
  return out;
}

function isRecord(v: unknown): v is RestartRecord {
  if (typeof v !== 'object' || v === null) return false;
  const r = v as Record<string, unknown>;
  return (
    typeof r.id === 'number' && (r.kind === 'hot' || r.kind === 'phased') && typeof r.started === 'string'
  );
}

/** The fields of a worker event the lifetime totals need (structural: history.ts knows no cluster types). */
interface CountedWorker {
  index: number;
  bootedAt: number | undefined;
  /** Killed by the OOM killer: the cgroup ran out, the app did not crash. */
  oomKill?: { oom: boolean } | undefined;
  stats: { requests: number };
}
interface CountedEvent {
  t: string;
  requests?: number;
  code?: unknown;
  signal?: string | null;
  reason?: string;
}

const finalRequests = new WeakMap<CountedWorker, number>();

/**
 * Keep the lifetime totals from the master's worker events: a drained worker's final request count,
 * an uncaught exception (`leaving`), an exit of a booted worker that nobody asked for (non-zero code or
 * a signal: also a worker the master killed for not checking in).
 */
export function countWorkerEvent(history: RestartHistory, w: CountedWorker, msg: CountedEvent): void {
  if (msg.t === 'drained' && typeof msg.requests === 'number') finalRequests.set(w, msg.requests);
  else if (msg.t === 'leaving' && msg.reason?.startsWith('uncaught exception') === true)
    history.workerCrashed(w.index);
  else if (msg.t === 'exit') {
    // A worker that never booted failed to boot (a restart reports that); it did not crash.
    const died = (typeof msg.code === 'number' && msg.code !== 0) || typeof msg.signal === 'string';
    history.workerGone(
      w.index,
      Math.max(finalRequests.get(w) ?? 0, w.stats.requests),
      died && w.bootedAt !== undefined && w.oomKill?.oom !== true,
    );
  }
}
