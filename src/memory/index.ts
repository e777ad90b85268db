// The memory budget (cgroup.ts) and the OOM killer's aim (oom.ts), and what status and metrics show of
// them.

import { logEvent } from '../log/events.js';
import type { Logger } from '../log/logger.js';
import { type MemoryBudget, readMemoryBudget, readRssAnon } from './cgroup.js';
import { HOT_RESTART_MARGIN, mb } from './fit.js';

export { type CgroupRoots, type MemoryBudget, readMemoryBudget, readRssAnon } from './cgroup.js';
export {
  extraWorkersThatFit,
  type Fit,
  HOT_RESTART_MARGIN,
  type HotRestartPlan,
  mb,
  phaseConcurrencyThatFits,
  planHotRestart,
  RESTART_OVERFLOWS,
  type RestartOverflow,
  type RestartStrategy,
} from './fit.js';
export { describeOomKill, OomAim, type OomVerdict, oomScores, readOomScoreAdj } from './oom.js';

export type MemoryView = Omit<MemoryBudget, 'dir'> & {
  /** Cluster: what a hot restart would add (the workers' RssAnon, with the margin); null if unknown. */
  hotRestartNeed?: number | null;
  /** Cluster: the hot restart's need fits in the headroom. */
  hotRestartFits?: boolean | null;
};

/** The budget now; with `workers` (the current generation's pids), a hot restart's estimated need. */
export function memoryView(workers?: readonly number[]): MemoryView {
  const { dir: _dir, ...budget } = readMemoryBudget();
  if (workers === undefined) return budget;
  const need = hotRestartNeed(workers);
  // Without a cgroup limit nothing is planned against the host's memory (memory-plan.ts): it fits.
  const fits = need === null ? null : !budget.limited || need <= budget.headroom;
  return { ...budget, hotRestartNeed: need, hotRestartFits: fits };
}

/** The anonymous memory of each of `pids`, once more, with the margin; null when none could be read. */
export function hotRestartNeed(pids: readonly number[]): number | null {
  const anon = pids.map((p) => readRssAnon(p)).filter((n): n is number => n !== undefined);
  if (anon.length === 0) return null;
  const mean = anon.reduce((a, b) => a + b, 0) / anon.length;
  return Math.round(mean * pids.length * HOT_RESTART_MARGIN);
}

/**
 * Say at start when a cluster hot restart of `workers` workers would not fit in the memory budget: it
 * would then run staged, phased or not at all (--restart-overflow; each restart plans again with the
 * numbers of its moment: cluster/memory-plan.ts). `pids`: the workers serving now.
 */
export function warnIfHotRestartCannotFit(log: Logger, pids: readonly number[], workers: number): void {
  const v = memoryView(pids);
  if (v.hotRestartFits !== false || v.hotRestartNeed == null) return;
  logEvent(
    log,
    'memory.hot-restart-tight',
    {
      need: v.hotRestartNeed,
      headroom: v.headroom,
      limit: v.limit,
      workingSet: v.workingSet,
    },
    `at start: a hot restart may not fit in memory: its ${workers} new workers need ~${mb(v.hotRestartNeed)} beside the old ones, the headroom is ${mb(v.headroom)} (limit ${mb(v.limit)}, working set ${mb(v.workingSet)}); a hot restart then runs as --restart-overflow says (staged by default: as many new workers as fit first, the rest once the old ones drained)`,
  );
}
