// Aiming the kernel's OOM killer (cluster mode). When the cgroup runs out, the kernel kills the process
// with the highest badness: its memory plus oom_score_adj × (memory available) / 1000. So:
//   - a booting worker gets 1000, the most there is: it is the first choice, whatever its size. Its
//     death is a failed boot (the restart is abandoned, the old workers keep serving);
//   - a worker that booted gets a score between the master's own and 1000;
//   - the master keeps its own score (set by whoever started it: systemd's OOMScoreAdjust=, say), and so
//     is the last choice.
// Any process may raise a child's score; lowering it needs CAP_SYS_RESOURCE, except down to the lowest
// value a privileged writer set for it (inherited from the master): the master's own is always allowed.
//
// A worker that dies of SIGKILL while the cgroup's OOM-kill count went up was killed by the OOM killer
// (nserve's own SIGKILLs, at a boot timeout say, do not move that count).
import * as fs from 'node:fs';
import { logEvent } from '../log/events.js';
import type { Logger } from '../log/logger.js';
import { type CgroupRoots, type MemoryBudget, readMemoryBudget, SYSTEM_ROOTS } from './cgroup.js';
import { mb } from './fit.js';

export const OOM_SCORE_BOOTING = 1000;
/** How far above the master's score a serving worker sits. */
const SERVING_ABOVE_MASTER = 100;

/** A process's oom_score_adj, or undefined when it cannot be read (gone, no procfs). */
export function readOomScoreAdj(pid: number | 'self', roots: CgroupRoots = SYSTEM_ROOTS): number | undefined {
  try {
    const n = Number(fs.readFileSync(`${roots.proc}/${pid}/oom_score_adj`, 'utf8').trim());
    return Number.isInteger(n) ? n : undefined;
  } catch {
    return undefined;
  }
}

/** The scores of each role, given the master's own (-1000..1000). */
export function oomScores(master: number): { master: number; serving: number; booting: number } {
  const serving = Math.min(OOM_SCORE_BOOTING - 1, master + SERVING_ABOVE_MASTER);
  // A master already at 999 or 1000 leaves no room: nobody is set below it.
  return { master, serving: Math.max(master, serving), booting: Math.max(master, OOM_SCORE_BOOTING) };
}

/** What a worker's exit was, as far as the OOM killer goes (kept on the worker: every listener agrees). */
export interface OomVerdict {
  /** Killed by the OOM killer. */
  oom: boolean;
  /** The cgroup's count before and after, for the verdict's words. */
  before?: number;
  after?: number;
  /** The file that counts (memory.oom_control, memory.events). */
  file?: string;
}

export class OomAim {
  readonly scores: ReturnType<typeof oomScores>;
  /** OOM kills of the cgroup already explained (by a worker's death, or before nserve looked). */
  private seen: number | null;
  private warnedWrite = false;
  readonly budget: MemoryBudget;

  /**
   * `seen`: the count the previous image had explained (a hot restart's exec: a kill while it ran is
   * still a worker's), else the count now (kills before nserve started are nobody's). `onSeen` keeps it
   * for the next image.
   */
  constructor(
    private readonly log: Logger,
    options: { seen?: number; onSeen?: (n: number) => void; roots?: CgroupRoots } = {},
  ) {
    this.roots = options.roots ?? SYSTEM_ROOTS;
    this.onSeen = options.onSeen;
    this.scores = oomScores(readOomScoreAdj('self', this.roots) ?? 0);
    this.budget = readMemoryBudget(this.roots);
    this.seen = options.seen ?? this.budget.oomKills;
    if (this.seen !== null) this.onSeen?.(this.seen);
  }

  private readonly roots: CgroupRoots;
  private readonly onSeen: ((n: number) => void) | undefined;

  /**
   * Said once, at start: where the kernel cannot be aimed (memory.oom.group=1 kills the whole cgroup, so
   * only staying under the limit protects serving), and the limit nserve found.
   */
  announce(): void {
    const b = this.budget;
    if (b.oomGroup) {
      logEvent(
        this.log,
        'memory.oom-group',
        { cgroup: b.path, code: 'ERR_NSERVE_OOM_GROUP' },
        `memory.oom.group=1 on cgroup ${b.path}: an OOM kill ends every process of the container at once, so nserve cannot aim the OOM killer at a booting worker; only staying under the limit (${mb(b.limit)}) keeps the site up`,
      );
    }
  }

  private set(pid: number, score: number): void {
    try {
      fs.writeFileSync(`${this.roots.proc}/${pid}/oom_score_adj`, `${score}\n`);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ESRCH') return; // gone already
      if (this.warnedWrite) return;
      this.warnedWrite = true;
      logEvent(
        this.log,
        'memory.oom-score',
        { workerPid: pid, score, err },
        `cannot set oom_score_adj of worker pid ${pid} to ${score} (${code ?? String(err)}): the OOM killer may choose a serving process; said once`,
      );
    }
  }

  /** Just spawned: the OOM killer's first choice until it boots. */
  booting(pid: number): void {
    this.set(pid, this.scores.booting);
  }

  /** Booted: below booting workers, above the master. */
  serving(pid: number): void {
    this.set(pid, this.scores.serving);
  }

  /** A worker died of `signal`: was it the OOM killer? (Each kill in the count explains one death.) */
  judgeExit(signal: string | null): OomVerdict {
    if (signal !== 'SIGKILL') return { oom: false };
    const now = readMemoryBudget(this.roots);
    const after = now.oomKills;
    if (after === null) return { oom: false };
    const before = this.seen ?? after;
    if (after <= before) {
      this.seen = after;
      this.onSeen?.(after);
      return { oom: false };
    }
    this.seen = before + 1;
    this.onSeen?.(this.seen);
    const file = now.cgroup === 'v1' ? 'memory.oom_control' : 'memory.events';
    return { oom: true, before, after, file };
  }
}

/** The words of a verdict: `killed by the OOM killer (SIGKILL; oom_kill 3 → 4 in memory.oom_control)`. */
export function describeOomKill(v: OomVerdict): string {
  return `killed by the OOM killer (${oomKillEvidence(v)})`;
}

/** What shows it: `SIGKILL; oom_kill 3 → 4 in the cgroup's memory.oom_control`. */
export function oomKillEvidence(v: OomVerdict): string {
  return `SIGKILL; oom_kill ${v.before} → ${v.after} in the cgroup's ${v.file}`;
}
