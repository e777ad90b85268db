// Every path that adds workers beside the serving ones asks memory/fit.ts first, with the budget read
// now and the serving workers' anonymous memory: a cluster hot restart (all N new workers at once, or a
// fallback: --restart-overflow), a phased restart's --phase-concurrency and its canary, and a
// --worker-max-memory replacement, and one more worker (TTIN: cluster/control.ts). This module is that glue, and the second half of a staged hot
// restart (the workers booted once the old ones are gone).
import { errorMessage } from '../errors.js';
import { unlessAborted } from '../launcher/lifecycle.js';
import { logEvent } from '../log/events.js';
import {
  extraWorkersThatFit,
  type Fit,
  type HotRestartPlan,
  mb,
  phaseConcurrencyThatFits,
  planHotRestart,
  readMemoryBudget,
  readRssAnon,
} from '../memory/index.js';
import type { RestartRecord } from '../restart/history.js';
import type { Master } from './master.js';
import { servingPids } from './report.js';
import type { WorkerHandle } from './worker-handle.js';

/** How many more workers fit beside the serving ones now. */
export function fitNow(m: Master): Fit {
  const anon = servingPids(m)
    .map((p) => readRssAnon(p))
    .filter((n): n is number => n !== undefined);
  return extraWorkersThatFit(readMemoryBudget(), anon);
}

/** A cluster hot restart's strategy (memory/fit.ts), logged with its numbers and kept on `record`. */
export function planHot(m: Master): HotRestartPlan {
  const plan = planHotRestart(fitNow(m), m.count, m.config.restartOverflow, m.config.phaseConcurrency);
  const fields = {
    strategy: plan.strategy,
    preboot: plan.preboot,
    perWorker: plan.perWorker,
    headroom: plan.headroom,
  };
  // A refusal is said once, as the restart's verdict (logAbandoned); without a limit there is no plan.
  if (plan.perWorker === null) return plan;
  if (plan.strategy === 'hot') logEvent(m.log, 'restart.memory.fits', fields, `hot restart: ${plan.reason}`);
  else if (plan.strategy !== 'refused')
    logEvent(m.log, 'restart.memory.overflow', fields, `hot restart does not fit in memory: ${plan.reason}`);
  return plan;
}

export function recordPlan(record: RestartRecord | undefined, plan: HotRestartPlan): void {
  if (record === undefined) return;
  record.strategy = plan.strategy;
  record.memory = plan.reason;
  if (plan.strategy === 'staged') record.preboot = plan.preboot;
}

/**
 * A phased restart's workers at a time: --phase-concurrency, or fewer when they do not fit (said in the
 * log); undefined, with the verdict in `refused`, when not even one more worker fits (a canary is one).
 */
export function phaseConcurrency(m: Master, wanted: number): { concurrency: number } | { refused: string } {
  const fit = fitNow(m);
  // More than the worker count (after a TTOU) asks for no more than the count: nothing to lower then.
  const want = Math.min(wanted, Math.max(1, m.count));
  const n = phaseConcurrencyThatFits(fit, want);
  if (n === want) return { concurrency: n };
  const each = fit.perWorker === null ? '' : ` (~${mb(fit.perWorker)} each)`;
  if (n === 0)
    return {
      refused: `not even one new worker fits beside the serving ones${each}: the headroom is ${mb(fit.headroom)} (free memory, raise the limit, or lower -w)`,
    };
  logEvent(
    m.log,
    'restart.memory.concurrency-lowered',
    {
      wanted,
      concurrency: n,
      perWorker: fit.perWorker,
      headroom: fit.headroom,
    },
    `phased restart: ${n} worker${n > 1 ? 's' : ''} at a time, not ${wanted} (--phase-concurrency): only ${n} fit${n > 1 ? '' : 's'} in the headroom (${mb(fit.headroom)})${each}`,
  );
  return { concurrency: n };
}

/** A --worker-max-memory replacement can boot beside the worker it replaces. */
export function replacementFits(m: Master): boolean {
  return fitNow(m).extra >= 1;
}

/** Resolves once `w` has exited (its memory is back), or after `ms`. */
async function exited(w: WorkerHandle, ms: number): Promise<void> {
  if (!w.alive) return;
  await w.waitFor('exit', ms, (msg) => (msg.t === 'exit' ? true : undefined)).catch(() => {});
}

/**
 * Staged hot restart, once the old workers drained: the pre-booted new workers already serve (every
 * slot of a missing index is lent to them); wait until the old ones have exited (their memory is what the
 * rest boot in), then boot the rest. A worker of these that fails to boot is replaced like a crashed one
 * when the restart ends: the pre-booted ones proved that the new code boots.
 */
export async function bootRest(
  m: Master,
  old: readonly WorkerHandle[],
  generation: number,
  directory: string,
  signal: AbortSignal,
): Promise<number> {
  const { pool, log } = m;
  // A stop meanwhile: give up at once (the pre-booted workers serve on, and the stop drains them).
  await unlessAborted(
    Promise.all(old.map((w) => exited(w, m.config.shutdownTimeoutMs + 5000))),
    signal,
  ).catch(() => {});
  if (signal.aborted) return 0;
  const missing = Array.from({ length: m.count }, (_, i) => i).filter((i) => pool.workers[i] === undefined);
  let booted = 0;
  await Promise.all(
    missing.map(async (i) => {
      if (signal.aborted || m.isStopping()) return;
      let w: WorkerHandle | undefined;
      try {
        w = await pool.spawn(i, generation, directory);
        await unlessAborted(pool.waitBooted(w), signal);
      } catch (err) {
        w?.kill('SIGKILL');
        if (signal.aborted) return;
        logEvent(
          log,
          'restart.staged.worker-failed',
          { worker: i, err },
          `staged hot restart: worker ${i} failed to boot after the old ones drained: ${errorMessage(err)}; replaced like a crashed worker`,
        );
        return;
      }
      if (signal.aborted || m.isStopping()) {
        w.kill('SIGKILL');
        return;
      }
      pool.install(w);
      booted++;
    }),
  );
  await m.slots.rebalance();
  logEvent(
    log,
    'restart.staged.rest',
    { generation, booted, missing: missing.length },
    `staged hot restart: ${booted} of ${missing.length} remaining workers booted after the old ones drained`,
  );
  return booted;
}
