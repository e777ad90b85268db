// Cluster hot restart (SIGUSR2): the master re-execs (same PID) keeping the slots and its channels to the
// running workers, which go on serving; the new image boots a new generation that does not accept yet,
// then drains the old workers and only when all have drained lets the new ones accept. Old and new code
// never serve side by side; connections arriving in between wait in the slots' accept queues.
import * as fs from 'node:fs';
import { errorMessage } from '../errors.js';
import { unlessAborted } from '../launcher/lifecycle.js';
import { handedListeners } from '../listen/binder.js';
import { logEvent } from '../log/events.js';
import { reportInheritedLeaks, warnOnGrowth } from '../os/descriptors.js';
import type { Handoff } from '../restart/handoff.js';
import { type Abandoned, logAbandoned, newConfigProblem, prepareExec } from '../restart/prepare.js';
import type { Master } from './master.js';
import { bootRest, planHot, recordPlan } from './memory-plan.js';
import { phasedRestart } from './phased-restart.js';
import type { WorkerHandle } from './worker-handle.js';
import { bootExitReason } from './worker-states.js';

/**
 * Old image side. The new generation is spawned at once, from the re-resolved directory: its workers
 * are children of this PID whichever image runs it, so they boot while this image checks that the new
 * master can start, runs the hooks and execs, instead of after. They get no slot until the new image
 * has drained the old workers. If anything fails before the exec, they are killed and the old workers
 * go on serving, untouched.
 */
export async function hotRestart(m: Master, requestedAt: number): Promise<void> {
  const { log, ctx, pool } = m;
  // Do N new workers fit beside the old ones? If not: staged, phased or refused (memory-plan.ts).
  const plan = planHot(m);
  if (plan.strategy === 'phased') return phasedRestart(m, { fallback: plan });
  const signal = m.beginRestart('hot restart requested');
  const record = m.history.begin('hot');
  recordPlan(record, plan);
  const generation = m.generation + 1;
  logEvent(
    log,
    'restart.hot.started',
    { generation, strategy: plan.strategy },
    `hot restart: started (${plan.strategy})`,
  );
  let fresh: FreshWorkers | undefined;
  const abandon = (a: Abandoned): void => {
    fresh?.kill();
    m.history.finish(record, 'failed', a.reason);
    logAbandoned(log, a, 'old workers');
    m.endRestart('hot restart abandoned');
  };
  if (plan.strategy === 'refused')
    return abandon({ code: 'ERR_NSERVE_RESTART_NO_FIT', reason: plan.reason, stopped: false });
  let directory: string;
  try {
    directory = m.resolveNewDirectory();
  } catch (err) {
    return abandon({ code: 'ERR_NSERVE_BOOT_CHECK', reason: errorMessage(err), stopped: false });
  }
  // The new workers take the standbys (--standby); none is started again before the new image ends the
  // restart, and the idle ones are killed before the exec (their channels would close with it).
  pool.standbys.hold();
  // Staged: only as many as fit now; the new image boots the rest once the old workers are gone.
  const spawned = new FreshWorkers(m, plan.preboot, generation, directory, signal);
  fresh = spawned;
  // What only the new master image would find out after the exec (a config file gone, a new bind in use,
  // a pidfile directory removed) takes the whole server down there: checked here, while workers boot.
  let configProblem: string | undefined;
  let handed: WorkerHandle[] = [];
  const abandoned = await prepareExec(ctx, {
    check: 'none',
    keepFds: () => {
      // A worker whose channel closed (it is exiting) has nothing to hand: its number may be reused.
      handed = [...pool.alive(), ...spawned.list.filter((w) => w.alive)].filter((w) => !w.channel.isClosed);
      return [...m.listeners.map((l) => l.fd), ...handed.map((w) => w.channel.fd)];
    },
    handoff: (leaked) => clusterHandoff(m, handed, leaked),
    veto: () =>
      configProblem !== undefined
        ? { code: 'ERR_NSERVE_BOOT_CHECK', reason: configProblem, stopped: false }
        : spawned.failure === undefined
          ? undefined
          : { code: 'ERR_NSERVE_WORKER_BOOT', reason: spawned.failure, stopped: false },
    beforeExec: () => {
      for (const w of handed) w.channel.detach();
    },
    execFailed: () => {
      for (const w of handed) w.channel.reattach();
    },
    requestedAt,
    signal,
    // Every new worker spawned (and handed over), and each has read the config, before the exec.
    before: async () => {
      configProblem = await newConfigProblem(ctx, m.history.deploys.pinned, m.listeners);
      await spawned.configured(m.config.workerBootTimeoutMs);
      await pool.standbys.drop();
    },
  });
  abandon(abandoned);
}

/** What the old master image hands to the new one: its slots, the workers and the history. */
function clusterHandoff(
  m: Master,
  handed: readonly WorkerHandle[],
  leaked: Handoff['leaked'],
): Omit<Handoff, 'v' | 'back' | 'restart'> {
  return {
    listeners: handedListeners(m.listeners),
    ...m.handoffFor(handed),
    history: m.history.toHandoff(),
    totals: m.history.totalsToHandoff(),
    startedAt: m.ctx.startedAt,
    leaked,
    directory: m.directory,
    configFile: null,
    optimistic: false,
    releases: m.history.deploys.toHandoff(),
    ...(m.history.deploys.pinned === undefined ? {} : { pinned: m.history.deploys.pinned }),
  };
}

/**
 * A hot restart's new generation, spawned in the old image before the exec: its workers are children of
 * this PID whichever image runs it. The first failure among them (a boot error, an exit before booting)
 * vetoes the exec.
 */
class FreshWorkers {
  readonly list: WorkerHandle[] = [];
  failure: string | undefined;
  private readonly spawning: Promise<void>;

  constructor(m: Master, count: number, generation: number, directory: string, signal: AbortSignal) {
    this.spawning = (async () => {
      for (let i = 0; i < count && this.failure === undefined && !signal.aborted; i++) {
        const w = await m.pool.spawn(i, generation, directory);
        this.list.push(w);
        w.on((msg) => {
          if (msg.t === 'boot-error') this.failure ??= `worker ${w.index} failed to boot: ${msg.error}`;
          else if (msg.t === 'exit' && w.bootedAt === undefined) this.failure ??= bootExitReason(w, msg);
        });
      }
    })().catch((err: unknown) => {
      this.failure ??= errorMessage(err);
    });
  }

  kill(): void {
    for (const w of this.list) w.kill('SIGKILL');
  }

  /**
   * Every worker spawned, and each has read the config the new image will read (`configured`), before
   * loading the app: the exec waits for that, not for their boot. A new master image that could not start
   * (config file, directory, app file) would take every slot down with it.
   */
  async configured(timeoutMs: number): Promise<void> {
    await this.spawning;
    await Promise.all(
      this.list.map((w) =>
        w.configuredAt !== undefined || !w.alive
          ? undefined
          : w
              .waitFor('read its config', timeoutMs, (msg) =>
                msg.t === 'configured' || msg.t === 'boot-error' || msg.t === 'exit' || msg.t === 'booted'
                  ? true
                  : undefined,
              )
              .catch((err: unknown) => {
                this.failure ??= errorMessage(err);
              }),
      ),
    );
  }
}

/**
 * The workers the previous image handed over: the old generation serves on (indexed by worker index; a
 * second worker for an index, still draining, is retiring); the next generation's, spawned before the
 * exec, boot.
 */
function adoptHandedWorkers(m: Master, handoff: Handoff): { early: WorkerHandle[]; old: WorkerHandle[] } {
  const { pool } = m;
  const adopted = pool.adopt(handoff.workers);
  m.ctx.metrics?.store.adopted(adopted.map((w) => w.pid));
  // Workers of the next generation were spawned by the previous image before its exec.
  const early = adopted.filter((w) => w.generation > handoff.generation);
  const old = adopted.filter((w) => w.generation <= handoff.generation);
  // A worker that was not alive to hand over leaves a hole, filled when the restart ends (endRestart).
  pool.workers = [];
  for (const w of old) {
    if (w.serving && pool.workers[w.index] === undefined && w.index < m.count) pool.workers[w.index] = w;
    else pool.retiring.add(w);
  }
  // Until the new generation serves, replacements load what the old workers run.
  m.serves(old[0]?.directory ?? m.directory);
  return { early, old };
}

/**
 * New image side: adopt the old workers (still serving), boot a new generation that does not accept yet,
 * then drain the old workers and only when all have drained let the new ones accept. A new worker that
 * fails to boot abandons the restart; the old ones go on. Long on purpose: the switch's steps (boot,
 * notice, drain, rebalance, record) read in the order they happen, the pause measured across them.
 */
export async function completeHotRestart(m: Master, handoff: Handoff): Promise<void> {
  const { log, pool } = m;
  const signal = m.beginRestart('adopting the workers of the previous image', { notify: false });
  // No standby starts while the new generation boots (it would take their CPU): endRestart starts them.
  pool.standbys.hold();
  reportInheritedLeaks(handoff.leaked, log);
  const { early, old } = adoptHandedWorkers(m, handoff);
  const earlyDirectory = early[0]?.directory;
  if (m.ctx.rejected !== undefined) {
    // The new release's nserve could not read the hand-off and execed back: the old workers go on.
    for (const w of early) w.kill('SIGKILL');
    m.endRestart('the new image execed back');
    return;
  }
  const record = m.history.current();
  const generation = m.generation + 1;
  const abandon = (code: string, err: unknown): void => {
    m.history.finish(record, 'failed', errorMessage(err));
    logEvent(
      log,
      'restart.hot.abandoned',
      { code, err },
      `hot restart abandoned, old workers keep serving: ${errorMessage(err)}`,
    );
    m.endRestart('hot restart abandoned');
  };
  let directory: string;
  try {
    // The directory the early workers load (resolved at the signal), so the generation is one release.
    directory = earlyDirectory ?? m.resolveNewDirectory();
  } catch (err) {
    return abandon('ERR_NSERVE_BOOT_CHECK', err);
  }
  logEvent(
    log,
    'restart.hot.adopted',
    { adopted: old.map((w) => w.pid), booting: early.map((w) => w.pid), generation, directory },
    'hot restart: new master image adopted the workers; booting new workers',
  );
  // The early workers already boot; the new config may want more of them, or fewer.
  // Staged (memory-plan.ts): only the workers that fit beside the old ones boot now, the rest later.
  const preboot = record?.strategy === 'staged' ? Math.min(record.preboot ?? m.count, m.count) : m.count;
  const fresh: WorkerHandle[] = [];
  for (const w of early) {
    if (w.alive && w.index < preboot && fresh[w.index] === undefined) fresh[w.index] = w;
    else w.kill('SIGKILL');
  }
  try {
    for (let i = 0; i < preboot; i++) fresh[i] ??= await pool.spawn(i, generation, directory);
    await unlessAborted(Promise.all(fresh.map((w) => pool.waitBooted(w))), signal);
  } catch (err) {
    for (const w of fresh) w.kill('SIGKILL');
    return abandon('ERR_NSERVE_WORKER_BOOT', err);
  }
  // Still serving: the old apps are told to close their long-lived connections (WebSockets, streams),
  // which get the grace now, so that the pause below never waits for them.
  await pool.notice(old.filter((w) => w.alive));
  const silentFrom = Date.now();
  for (const w of old) pool.retiring.add(w);
  pool.workers = fresh;
  m.serves(directory);
  await Promise.all(
    old
      .filter((w) => w.alive)
      .map((w) =>
        pool.drain(w, 'hot restart: new generation booted', { why: 'restart', longLivedGraceMs: 0 }),
      ),
  );
  m.serves(directory, generation);
  await m.slots.rebalance();
  if (record !== undefined) {
    record.pauseMs = Date.now() - silentFrom;
    record.fds = fs.readdirSync('/proc/self/fd').length;
    record.workerFds = fresh.map((w) => fdCountOf(w.pid));
  }
  const pauseMs = Date.now() - silentFrom;
  if (preboot < m.count) await bootRest(m, old, generation, directory, signal);
  m.history.finish(record, 'ok');
  warnOnGrowth(m.history.fdCounts(), log);
  const requestedAt = handoff.restart.requestedAt;
  const restartMs = Date.now() - requestedAt;
  logEvent(
    log,
    'restart.hot.done',
    {
      generation,
      pids: pool.current().map((w) => w.pid),
      pauseMs,
      restartMs,
      strategy: record?.strategy,
      ...(record?.strategy === 'staged' ? { preboot } : {}),
    },
    `hot restart: done in ${restartMs} ms, pause ${pauseMs} ms (restart #${record?.id ?? handoff.restart.count}, generation ${generation}${record?.strategy === 'staged' ? `, staged: ${preboot} of ${m.count} booted before the old workers drained` : ''})`,
  );
  m.endRestart('hot restart done');
}

function fdCountOf(pid: number): number {
  try {
    return fs.readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return 0;
  }
}
