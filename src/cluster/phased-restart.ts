// Phased restart (SIGUSR1) and resizing (SIGTTIN/SIGTTOU): workers are replaced or added one at a time,
// surge-first, so some worker always accepts on every slot. Old and new code serve side by side for a
// while (schema changes must be backwards-compatible: docs/restarts.md).
import { errorMessage } from '../errors.js';
import { unlessAborted } from '../lifecycle.js';
import type { Master } from './master.js';
import type { WorkerHandle } from './worker-handle.js';

/**
 * Per worker: spawn its replacement from the re-resolved directory, wait until it booted and accepts on
 * the old worker's slots, then drain the old worker. A replacement that fails to boot stops the rollout;
 * the remaining old workers keep serving.
 */
export async function phasedRestart(m: Master): Promise<void> {
  const { log, pool } = m;
  const signal = m.beginRestart('phased restart requested');
  const started = Date.now();
  const record = m.history.begin('phased');
  const generation = m.generation + 1;
  let replaced = 0;
  try {
    const directory = m.resolveNewDirectory();
    log.info({ generation, directory }, 'phased restart: started');
    for (let index = 0; index < m.count; index++) {
      const old = pool.workers[index];
      const fresh = await pool.spawn(index, generation, directory);
      try {
        await unlessAborted(pool.waitBooted(fresh), signal);
      } catch (err) {
        fresh.kill('SIGKILL');
        throw err;
      }
      pool.install(fresh);
      await m.slots.rebalance();
      if (old?.alive) await pool.drain(old, 'phased restart: replaced', { why: 'restart' });
      replaced++;
      log.info(
        { worker: index, workerPid: fresh.pid, generation },
        `phased restart: worker ${index + 1}/${m.count} replaced (phase ${generation})`,
      );
    }
    m.generation = generation;
    m.directory = directory;
    m.history.finish(record, 'ok');
    const ms = Date.now() - started;
    log.info(
      { generation, ms },
      `phased restart: done in ${ms} ms (restart #${record.id}, generation ${generation})`,
    );
  } catch (err) {
    if (replaced > 0) m.generation = generation;
    m.history.finish(record, 'failed', errorMessage(err));
    log.error(
      { code: 'ERR_NSERVE_WORKER_BOOT', err, replaced },
      `phased restart stopped after ${replaced}/${m.count} workers, the others keep serving: ${errorMessage(err)}`,
    );
  }
  m.endRestart('phased restart ended');
}

/** Change the worker count: a new worker boots before it gets slots; removed ones hand theirs over first. */
export async function resize(m: Master, count: number): Promise<void> {
  const { log, pool } = m;
  const previous = m.count;
  m.count = count;
  log.info({ from: previous, to: count }, `workers: ${previous} → ${count}`);
  if (count > previous) {
    let w: WorkerHandle | undefined;
    try {
      w = await pool.spawn(count - 1, m.generation, m.directory);
      pool.workers[count - 1] = w;
      await pool.waitBooted(w);
    } catch (err) {
      log.error({ err }, `adding worker ${count - 1} failed: ${errorMessage(err)}`);
      w?.kill('SIGKILL');
      m.count = previous;
      pool.workers.length = previous;
      return;
    }
    await m.slots.rebalance();
  } else {
    const removed = pool.workers.slice(count).filter((w): w is WorkerHandle => w !== undefined);
    pool.workers.length = count;
    const alive = removed.filter((w) => w.alive);
    for (const w of alive) pool.retiring.add(w);
    // Give the remaining workers the removed workers' slots before those drain.
    await m.slots.rebalance();
    await Promise.all(alive.map((w) => pool.drain(w, 'worker count lowered', { why: 'replace' })));
  }
}
