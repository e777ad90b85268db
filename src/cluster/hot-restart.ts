// Cluster hot restart (SIGUSR2): the master re-execs (same PID) keeping the slots and its channels to the
// running workers, which go on serving; the new image boots a new generation that does not accept yet,
// then drains the old workers and only when all have drained lets the new ones accept. Old and new code
// never serve side by side; connections arriving in between wait in the slots' accept queues.
import * as fs from 'node:fs';
import { handedListeners } from '../binder.js';
import { errorMessage } from '../errors.js';
import { reportInheritedLeaks, warnOnGrowth } from '../fds.js';
import { unlessAborted } from '../lifecycle.js';
import { logAbandoned, prepareExec } from '../restart/exec.js';
import type { Handoff } from '../restart/handoff.js';
import type { Master } from './master.js';
import type { WorkerHandle } from './worker-handle.js';

/** Old image side: check the new master can start, run the hooks, exec with the workers still serving. */
export async function hotRestart(m: Master, requestedAt: number): Promise<void> {
  const { log, ctx } = m;
  const signal = m.beginRestart('hot restart requested');
  const record = m.history.begin('hot');
  log.info({ generation: m.generation + 1 }, 'hot restart: started');
  let handed: WorkerHandle[] = [];
  // The new master image must be able to start (config file, directory, app file): if it could not, the
  // exec would take every slot down with it. The new code itself is checked by booting the new workers
  // while the old ones serve.
  const abandoned = await prepareExec(ctx, {
    check: 'config',
    keepFds: () => {
      handed = m.pool.alive();
      return [...m.listeners.map((l) => l.fd), ...handed.map((w) => w.channel.fd)];
    },
    handoff: (leaked) => ({
      listeners: handedListeners(m.listeners),
      ...m.handoffFor(handed),
      history: m.history.toHandoff(),
      totals: m.history.totalsToHandoff(),
      startedAt: ctx.startedAt,
      leaked,
      directory: m.directory,
    }),
    beforeExec: () => {
      for (const w of handed) w.channel.detach();
    },
    execFailed: () => {
      for (const w of handed) w.channel.reattach();
    },
    requestedAt,
    signal,
  });
  m.history.finish(record, 'failed', abandoned.reason);
  logAbandoned(log, abandoned, 'old workers');
  m.endRestart('hot restart abandoned');
}

/**
 * New image side: adopt the old workers (still serving), boot a new generation that does not accept yet,
 * then drain the old workers and only when all have drained let the new ones accept. A new worker that
 * fails to boot abandons the restart; the old ones go on.
 */
export async function completeHotRestart(m: Master, handoff: Handoff): Promise<void> {
  const { log, pool } = m;
  const signal = m.beginRestart('adopting the workers of the previous image', { notify: false });
  reportInheritedLeaks(handoff.leaked, log);
  const old = pool.adopt(handoff.workers);
  // Indexed by worker index: a worker that was not alive to hand over leaves a hole, filled when the
  // restart ends (endRestart). A second worker for an index (still draining) is retiring.
  pool.workers = [];
  for (const w of old) {
    if (w.serving && pool.workers[w.index] === undefined && w.index < m.count) pool.workers[w.index] = w;
    else pool.retiring.add(w);
  }
  // Until the new generation serves, replacements load what the old workers run.
  m.directory = old[0]?.directory ?? m.directory;
  if (m.ctx.rejected !== undefined) {
    // The new release's nserve could not read the hand-off and execed back: the old workers go on.
    m.endRestart('the new image execed back');
    return;
  }
  const record = m.history.current();
  const generation = m.generation + 1;
  const abandon = (code: string, err: unknown): void => {
    m.history.finish(record, 'failed', errorMessage(err));
    log.error({ code, err }, `hot restart abandoned, old workers keep serving: ${errorMessage(err)}`);
    m.endRestart('hot restart abandoned');
  };
  let directory: string;
  try {
    directory = m.resolveNewDirectory();
  } catch (err) {
    return abandon('ERR_NSERVE_BOOT_CHECK', err);
  }
  log.info(
    { adopted: old.map((w) => w.pid), generation, directory },
    'hot restart: new master image adopted the workers; booting new workers',
  );
  const fresh: WorkerHandle[] = [];
  try {
    for (let i = 0; i < m.count; i++) fresh.push(await pool.spawn(i, generation, directory));
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
  m.directory = directory;
  await Promise.all(
    old
      .filter((w) => w.alive)
      .map((w) =>
        pool.drain(w, 'hot restart: new generation booted', { why: 'restart', longLivedGraceMs: 0 }),
      ),
  );
  m.generation = generation;
  await m.slots.rebalance();
  if (record !== undefined) {
    record.pauseMs = Date.now() - silentFrom;
    record.fds = fs.readdirSync('/proc/self/fd').length;
    record.workerFds = fresh.map((w) => fdCountOf(w.pid));
  }
  m.history.finish(record, 'ok');
  warnOnGrowth(m.history.fdCounts(), log);
  const requestedAt = handoff.restart.requestedAt;
  const pauseMs = Date.now() - silentFrom;
  const restartMs = Date.now() - requestedAt;
  log.info(
    { generation, pids: fresh.map((w) => w.pid), pauseMs, restartMs },
    `hot restart: done in ${restartMs} ms, pause ${pauseMs} ms (restart #${record?.id ?? handoff.restart.count}, generation ${generation})`,
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
