// Phased restart (SIGUSR1) and resizing (SIGTTIN/SIGTTOU): workers are replaced (--phase-concurrency at a
// time, default one) or added surge-first, so some worker always accepts on every slot. Old and new code
// serve side by side for a while (schema changes must be backwards-compatible: docs/restarts.md). With
// --canary the first replacement serves alone for a while and is judged first (canary.ts).
//
// A failed canary is withdrawn and its index goes back to the previous release, loaded again from its
// directory. When that directory holds the failed release (an app edited in place: --directory is the
// directory that serves) or is gone, there is no previous release on disk: the old workers run it from
// memory only. Then the canary's old worker is kept serving beside it through the window, a worker that
// leaves is not replaced (`noWayBack`, deploy/record.ts), and nothing claims that the previous release serves
// again when a new worker would load the failed one.

import { isDirectory } from '../deploy/release.js';
import { errorMessage } from '../errors.js';
import { unlessAborted } from '../launcher/lifecycle.js';
import { logEvent } from '../log/events.js';
import type { HotRestartPlan } from '../memory/index.js';
import type { RestartRecord } from '../restart/history.js';
import { type CanaryVerdict, canaryRecord, watchCanary } from './canary.js';
import type { Master } from './master.js';
import { phaseConcurrency, recordPlan } from './memory-plan.js';
import type { WorkerHandle } from './worker-handle.js';

/** The canary judged the new release worse: the rollout stopped; `outcome` says what serves now. */
class CanaryFailed extends Error {
  constructor(
    summary: string,
    readonly outcome: string,
  ) {
    super(summary);
  }
}

/**
 * Why the previous release (`previous`, what the old workers were loaded from) cannot be loaded again
 * for a restart onto `target`; undefined when it can.
 */
export function lostRelease(previous: string, target: string): 'in-place' | 'removed' | undefined {
  if (previous === target) return 'in-place';
  return isDirectory(previous) ? undefined : 'removed';
}

/** Worker indexes in the order they are replaced: the canary alone first, then `concurrency` at a time. */
export function phases(count: number, concurrency: number, canary: boolean): number[][] {
  const out: number[][] = [];
  let i = 0;
  if (canary && count > 0) out.push([i++]);
  const n = Math.max(1, Math.min(concurrency, count));
  while (i < count) {
    out.push(Array.from({ length: Math.min(n, count - i) }, (_, k) => i + k));
    i += n;
  }
  return out;
}

/**
 * Per phase: spawn the replacements from the re-resolved directory, wait until all booted and accept on
 * the old workers' slots, then drain the old workers. A replacement that fails to boot stops the rollout
 * (its phase's other replacements are killed); the remaining old workers keep serving.
 */
export async function phasedRestart(m: Master, options: { fallback?: HotRestartPlan } = {}): Promise<void> {
  const { log, config } = m;
  const signal = m.beginRestart(
    options.fallback === undefined
      ? 'phased restart requested'
      : 'hot restart requested, run as a phased one',
  );
  const started = Date.now();
  const record = m.history.begin('phased');
  if (options.fallback !== undefined) recordPlan(record, options.fallback);
  // Each phase boots its replacements beside the workers they replace: as many as fit (memory-plan.ts).
  const fit = phaseConcurrency(m, options.fallback?.concurrency ?? config.phaseConcurrency);
  if ('refused' in fit) {
    record.strategy = 'refused';
    m.history.finish(record, 'failed', fit.refused);
    logEvent(
      log,
      'restart.phased.refused',
      { code: 'ERR_NSERVE_RESTART_NO_FIT', strategy: 'refused' },
      `phased restart refused, old workers keep serving: ${fit.refused}`,
    );
    return m.endRestart('phased restart refused');
  }
  const generation = m.generation + 1;
  // A rollback goes back to the release that served before: it is not judged again (no canary).
  const canaryMs = m.history.deploys.pinned === undefined ? config.canaryMs : undefined;
  let replaced = 0;
  try {
    const directory = m.resolveNewDirectory();
    const plan = phases(m.count, fit.concurrency, canaryMs !== undefined);
    logEvent(
      log,
      'restart.phased.started',
      { generation, directory, concurrency: fit.concurrency, canaryMs },
      'phased restart: started',
    );
    for (const [p, indexes] of plan.entries()) {
      const canary = p === 0 && canaryMs !== undefined ? canaryMs : undefined;
      replaced += await runPhase(m, record, indexes, { generation, directory, signal, canaryMs: canary });
    }
    m.serves(directory, generation);
    m.history.finish(record, 'ok');
    const ms = Date.now() - started;
    logEvent(
      log,
      'restart.phased.done',
      { generation, ms },
      `phased restart: done in ${ms} ms (restart #${record.id}, generation ${generation})`,
    );
  } catch (err) {
    if (replaced > 0) m.serves(m.directory, generation);
    reportStopped(m, record, err, replaced);
  }
  m.endRestart('phased restart ended');
}

/**
 * One phase: its replacements boot and take the old workers' slots, then the old ones drain (or, for the
 * canary's phase, the canary is judged first). Returns how many workers it replaced.
 */
async function runPhase(
  m: Master,
  record: RestartRecord,
  indexes: number[],
  phase: { generation: number; directory: string; signal: AbortSignal; canaryMs: number | undefined },
): Promise<number> {
  const { log, pool } = m;
  const { generation, directory, signal, canaryMs } = phase;
  const canary = canaryMs !== undefined;
  const { fresh, old, acceptedAt } = await surge(m, indexes, generation, directory, signal, canary);
  if (canary) {
    const { verdict, outcome } = await canaryPhase(m, record, fresh[0]!, old[0], canaryMs, signal);
    record.canary = canaryRecord(verdict);
    if (!verdict.ok) throw new CanaryFailed(verdict.summary, outcome);
  } else {
    await Promise.all(
      old.map((w) => (w?.alive ? pool.drain(w, 'phased restart: replaced', { why: 'restart' }) : undefined)),
    );
  }
  for (const w of fresh) {
    logEvent(
      log,
      'restart.phased.worker-replaced',
      {
        worker: w.index,
        workerPid: w.pid,
        generation,
        // spawn → booted, and spawn → accepting on its slots (within boot + 150 ms on a quiet machine)
        bootedMs: (w.bootedAt ?? acceptedAt) - w.spawnedAt,
        ms: acceptedAt - w.spawnedAt,
      },
      `phased restart: worker ${w.index + 1}/${m.count} replaced (phase ${generation})`,
    );
  }
  return fresh.length;
}

/** A phased restart that stopped: its verdict (the canary's, or a worker's failure) and what serves. */
function reportStopped(m: Master, record: RestartRecord, err: unknown, replaced: number): void {
  const { log } = m;
  const held = err instanceof CanaryFailed ? m.history.deploys.noWayBack : undefined;
  // Said where `ctl phased-restart --wait` and `ctl stats` show it: the verdict, then what serves.
  m.history.finish(record, 'failed', `${errorMessage(err)}${held === undefined ? '' : `; ${held.message}`}`);
  if (err instanceof CanaryFailed) {
    logEvent(
      log,
      'restart.phased.stopped',
      { code: 'ERR_NSERVE_CANARY', replaced, noWayBack: held !== undefined, outcome: err.outcome },
      `phased restart stopped after the canary, ${err.outcome}: ${err.message}`,
    );
  } else {
    logEvent(
      log,
      'restart.phased.stopped',
      { code: 'ERR_NSERVE_WORKER_BOOT', err, replaced },
      `phased restart stopped after ${replaced}/${m.count} workers, the others keep serving: ${errorMessage(err)}`,
    );
  }
}

/**
 * Spawn replacements for `indexes`, wait until every one booted, and give them the old workers' slots
 * (both accept for a moment). Returns them with the old workers, not yet drained.
 */
async function surge(
  m: Master,
  indexes: readonly number[],
  generation: number,
  directory: string,
  signal: AbortSignal,
  canary: boolean,
): Promise<{ fresh: WorkerHandle[]; old: (WorkerHandle | undefined)[]; acceptedAt: number }> {
  const { pool } = m;
  const old = indexes.map((i) => pool.workers[i]);
  const spawned = await Promise.allSettled(indexes.map((i) => pool.spawn(i, generation, directory)));
  const fresh = spawned.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
  try {
    const failed = spawned.find((s): s is PromiseRejectedResult => s.status === 'rejected');
    if (failed !== undefined) throw failed.reason;
    await unlessAborted(Promise.all(fresh.map((w) => pool.waitBooted(w))), signal);
  } catch (err) {
    for (const w of fresh) w.kill('SIGKILL');
    throw err;
  }
  // A canary's leaving (an uncaught exception) is the canary's verdict, not a replacement for crash
  // recovery: from before it gets traffic, so one that fails on its first requests is caught too.
  if (canary) for (const w of fresh) w.replacing = true;
  for (const w of fresh) pool.install(w);
  await m.slots.rebalance();
  return { fresh, old, acceptedAt: Date.now() };
}

type Verdict = CanaryVerdict | { ok: false; summary: string };

/**
 * The canary serves its share (its old worker drains, as in any phase) while the others keep the old
 * code; with a single worker the old one keeps serving beside it, as the baseline. So it does when the
 * previous release is not on disk (edited in place, removed): a failed canary then leaves every index
 * with its old worker, since none could be loaded again. A worse canary is withdrawn: its slots go to
 * old workers at once, then a worker of the previous release takes its index.
 */
async function canaryPhase(
  m: Master,
  record: RestartRecord,
  canary: WorkerHandle,
  old: WorkerHandle | undefined,
  canaryMs: number,
  signal: AbortSignal,
): Promise<{ verdict: Verdict; outcome: string }> {
  const { log, pool } = m;
  const others = pool.current().filter((w) => w !== canary && w.serving);
  const noWayBack = lostRelease(m.directory, canary.directory) !== undefined;
  const beside = (others.length === 0 || noWayBack) && old?.alive === true ? old : undefined;
  // It stops accepting at once; its in-flight requests finish while the canary is watched.
  const draining =
    beside === undefined && old?.alive === true
      ? pool.drain(old, 'phased restart: replaced', { why: 'restart' })
      : Promise.resolve();
  logEvent(
    log,
    'canary.started',
    { worker: canary.index, workerPid: canary.pid, canaryMs, oldBeside: beside !== undefined },
    `phased restart: canary worker ${canary.index} serves for ${canaryMs} ms${noWayBack && beside !== undefined ? ` beside its old worker (the previous release is not on disk: ${m.directory})` : ''}`,
  );
  const baseline = beside === undefined ? others : [...others, beside];
  const watched = await watchCanary(canary, baseline, canaryMs, signal);
  await draining;
  const verdict = 'failed' in watched ? { ok: false as const, summary: watched.failed } : watched;
  if (verdict.ok) {
    const inconclusive = 'inconclusive' in verdict && verdict.inconclusive;
    if (inconclusive)
      logEvent(
        log,
        'canary.inconclusive',
        { canary: verdict },
        `phased restart: ${verdict.summary}: going on`,
      );
    else logEvent(log, 'canary.passed', { canary: verdict }, `phased restart: ${verdict.summary}`);
    canary.replacing = false;
    if (beside?.alive) await pool.drain(beside, 'phased restart: replaced', { why: 'restart' });
    return { verdict, outcome: 'going on' };
  }
  logEvent(
    log,
    'canary.failed',
    { canary: verdict, code: 'ERR_NSERVE_CANARY' },
    `phased restart: ${verdict.summary}`,
  );
  // The old worker it served beside takes its slots back, if it is still there (else a new one of the
  // previous release does).
  const outcome = await withdraw(m, record, canary, beside?.alive ? beside : undefined, signal);
  return { verdict, outcome };
}

/**
 * Take a failed canary out of service and give its index back to the previous release: its old worker,
 * else a new one loaded from the previous directory, else (not on disk) nobody. Returns what serves now.
 * Long on purpose: the three ways back are tried in order, each falling through to the next.
 */
async function withdraw(
  m: Master,
  record: RestartRecord,
  canary: WorkerHandle,
  beside: WorkerHandle | undefined,
  signal: AbortSignal,
): Promise<string> {
  const { log, pool } = m;
  const index = canary.index;
  const deploys = m.history.deploys;
  // Looked at again now: the previous release may have been removed during the window.
  const lost = lostRelease(m.directory, canary.directory);
  const othersServe = pool.current().some((w) => w !== canary && w.serving);
  if (lost !== undefined) {
    const held = deploys.holdBack({
      restart: record.id,
      cause: lost,
      running: deploys.serving ?? null,
      failed: record.release ?? deploys.release(canary.directory),
      workers: m.count,
    });
    if (beside === undefined && !othersServe) {
      // Never zero workers: the canary is the only one left (its old worker died meanwhile) and nothing
      // else could be loaded. A release failing some of its requests beats refusing all of them.
      canary.replacing = false;
      const n = deploys.withhold(index, false) ?? held;
      logEvent(
        log,
        'canary.no-way-back',
        { worker: index, workerPid: canary.pid, code: 'ERR_NSERVE_NO_WAY_BACK', noWayBack: n },
        n.message,
      );
      return 'the canary keeps serving: no worker of the previous release was left, and it is not on disk';
    }
  }
  canary.markDraining('the canary failed');
  if (beside !== undefined) {
    pool.install(beside); // the old worker it served beside is current again; the canary retires
    pool.retiring.delete(beside);
  } else {
    if (canary.alive) pool.retiring.add(canary);
    delete pool.workers[index];
  }
  // Its slots are lent to old workers before it stops accepting: none goes without an acceptor.
  await m.slots.rebalance();
  if (canary.alive) await pool.drain(canary, 'the canary failed', { why: 'replace' });
  if (lost !== undefined) {
    // Its index stays empty when its old worker is gone: a new worker would load the failed release.
    const n = (beside === undefined ? deploys.withhold(index, true) : undefined) ?? deploys.noWayBack;
    if (n !== undefined)
      logEvent(
        log,
        'canary.no-way-back',
        { worker: index, code: 'ERR_NSERVE_NO_WAY_BACK', noWayBack: n },
        n.message,
      );
    const serving = m.count - (n?.withheld.length ?? 0);
    return `the previous release could not be brought back (it is not on disk): ${serving} of ${m.count} workers run it from memory${serving < m.count ? ` (${m.count - serving} worker${m.count - serving > 1 ? 's' : ''} less)` : ''}`;
  }
  // A stop asked for meanwhile (it aborts `signal`) needs no worker booted only to be drained.
  if (beside !== undefined) return 'the previous release serves again';
  if (signal.aborted || m.isStopping()) return 'the server is stopping';
  let back: WorkerHandle | undefined;
  try {
    back = await pool.spawn(index, m.generation, m.directory);
    await unlessAborted(pool.waitBooted(back), signal);
  } catch (err) {
    back?.kill('SIGKILL');
    if (signal.aborted) return 'the server is stopping';
    // The index stays empty: it is replaced (with back-off) once the restart has ended.
    logEvent(
      log,
      'canary.rollback.boot-failed',
      { worker: index, err },
      `worker ${index} of the previous release failed to boot: ${errorMessage(err)}`,
    );
    return `the previous release serves on the other workers (worker ${index} of it failed to boot and is replaced with back-off)`;
  }
  if (m.isStopping()) {
    back.kill('SIGKILL');
    return 'the server is stopping';
  }
  pool.install(back);
  await m.slots.rebalance();
  logEvent(
    log,
    'canary.rollback.worker-back',
    { worker: index, workerPid: back.pid, generation: m.generation, directory: m.directory },
    `phased restart: worker ${index} runs the previous release again`,
  );
  return 'the previous release serves again';
}
