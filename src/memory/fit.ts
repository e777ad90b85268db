// Does a restart fit in the memory budget? The arithmetic only (no processes, no files): cluster/
// memory-plan.ts feeds it the budget (cgroup.ts) and the serving workers' anonymous memory.
//
// Every path that adds workers beside the serving ones asks the same question: how many more workers,
// each at the current workers' anonymous memory (RssAnon) with HOT_RESTART_MARGIN, fit between the
// working set and the limit? A cluster hot restart wants N more (N old and N new workers at once); a
// phased restart wants --phase-concurrency more; a canary, a --worker-max-memory replacement and one more
// worker (TTIN), one. A worker that leaves (an uncaught exception) drains first when others can take its
// slots, so its replacement needs no more than it gave back.
//
// A leaf (no imports): the config's settings table reads RESTART_OVERFLOWS from here, so every process
// loads it, a worker too, which needs neither the cgroup reader nor the OOM killer's aim (oom.ts).

/** A byte count for a log line or a verdict: `512 MB`, `1.5 GB`. */
export function mb(n: number): string {
  return n >= 1024 ** 3 ? `${(n / 1024 ** 3).toFixed(1)} GB` : `${Math.round(n / 1024 ** 2)} MB`;
}

/**
 * A cluster hot restart keeps every old worker while a new one boots for each: it needs, on top of
 * today's working set, one more worker's anonymous memory per worker, plus this margin (a booting app
 * peaks above what it settles at).
 */
export const HOT_RESTART_MARGIN = 1.1;

/** What a cluster hot restart does when its N new workers do not fit beside the old ones. */
export const RESTART_OVERFLOWS = ['staged', 'phased', 'refuse'] as const;
export type RestartOverflow = (typeof RESTART_OVERFLOWS)[number];

/** The strategy that ran: a plain hot restart, one of the fallbacks, or none (`refused`). */
export const RESTART_STRATEGIES = ['hot', 'staged', 'phased', 'refused'] as const;
export type RestartStrategy = (typeof RESTART_STRATEGIES)[number];

export interface FitBudget {
  /** Bytes: the effective limit. */
  limit: number;
  /** A cgroup limit applies (false: `limit` is the host's memory, and nothing is planned against it). */
  limited: boolean;
  /** Bytes in use (usage − inactive file cache). */
  workingSet: number;
}

export interface Fit {
  /** How many more workers fit now (Infinity: no limit, or nothing known to estimate with). */
  extra: number;
  /** One more worker's estimated need (mean RssAnon × margin); null when unknown. */
  perWorker: number | null;
  /** limit − working set, at least 0. */
  headroom: number;
}

/** How many more workers fit beside the ones serving, given their anonymous memory (`anon`, bytes). */
export function extraWorkersThatFit(budget: FitBudget, anon: readonly number[]): Fit {
  const headroom = Math.max(0, budget.limit - budget.workingSet);
  const known = anon.filter((n) => Number.isFinite(n) && n > 0);
  if (!budget.limited || known.length === 0) return { extra: Infinity, perWorker: null, headroom };
  const perWorker = Math.round((known.reduce((a, b) => a + b, 0) / known.length) * HOT_RESTART_MARGIN);
  return { extra: Math.floor(headroom / perWorker), perWorker, headroom };
}

export interface HotRestartPlan extends Fit {
  strategy: RestartStrategy;
  /** New workers booted beside the old ones before these drain (the whole generation for `hot`). */
  preboot: number;
  /** Phased fallback: the workers replaced at a time. */
  concurrency: number;
  /** One line for the log and the restart's record: why this strategy. */
  reason: string;
}

/**
 * The strategy of a cluster hot restart of `workers` workers. All N new ones fit: `hot`. Otherwise, by
 * `overflow`:
 *   - `staged` (default): boot as many new workers as fit beside the old ones, drain the old ones, then
 *     boot the rest. Old and new code still never serve side by side. At least one must fit: the
 *     pre-booted workers are what proves the new code boots before the old code stops serving;
 *   - `phased`: a phased restart, at most as many workers at a time as fit (and --phase-concurrency);
 *   - `refuse`: no restart; the old code serves on.
 * Where not even one more worker fits, every overflow is a refusal, with the numbers in `reason`.
 */
export function planHotRestart(
  fit: Fit,
  workers: number,
  overflow: RestartOverflow,
  phaseConcurrency = 1,
): HotRestartPlan {
  const base = { ...fit, preboot: workers, concurrency: phaseConcurrency };
  if (fit.extra >= workers || fit.perWorker === null) {
    const reason =
      fit.perWorker === null
        ? 'no memory limit applies'
        : `${workers} new workers (~${mb(fit.perWorker * workers)}) fit in the headroom (${mb(fit.headroom)})`;
    return { ...base, strategy: 'hot', reason };
  }
  const needs = `${workers} new workers need ~${mb(fit.perWorker * workers)} beside the old ones (~${mb(fit.perWorker)} each), the headroom is ${mb(fit.headroom)}`;
  if (fit.extra < 1)
    return {
      ...base,
      strategy: 'refused',
      preboot: 0,
      reason: `not even one new worker fits beside the old ones: ${needs} (free memory, raise the limit, or lower -w)`,
    };
  const fits = `${fit.extra} fit${fit.extra === 1 ? 's' : ''}`;
  switch (overflow) {
    case 'staged':
      return {
        ...base,
        strategy: 'staged',
        preboot: fit.extra,
        reason: `${needs}: staged (${fits}; booting those, then draining the old workers, then booting the other ${workers - fit.extra})`,
      };
    case 'phased':
      return {
        ...base,
        strategy: 'phased',
        preboot: 0,
        concurrency: Math.max(1, Math.min(phaseConcurrency, fit.extra)),
        reason: `${needs}: phased restart instead (--restart-overflow phased; ${fits} at a time)`,
      };
    case 'refuse':
      return {
        ...base,
        strategy: 'refused',
        preboot: 0,
        reason: `${needs} (${fits}): refused (--restart-overflow refuse)`,
      };
  }
}

/** Workers a phased restart replaces at a time: `wanted`, or as many as fit; 0 when none fits. */
export function phaseConcurrencyThatFits(fit: Fit, wanted: number): number {
  return Math.max(0, Math.min(wanted, fit.extra));
}
