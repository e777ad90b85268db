// TTIN/TTOU (`nserve ctl workers +1/-1`): change the worker count while serving.
import { errorMessage } from '../errors.js';
import { logEvent } from '../log/events.js';
import type { Master } from './master.js';
import type { WorkerHandle } from './worker-handle.js';

/** Change the worker count: a new worker boots before it gets slots; removed ones hand theirs over first. */
export async function resize(m: Master, count: number): Promise<void> {
  const { log, pool } = m;
  const previous = m.count;
  m.resized(count);
  logEvent(log, 'workers.scaled', { from: previous, to: count }, `workers: ${previous} → ${count}`);
  if (count > previous) {
    let w: WorkerHandle | undefined;
    try {
      w = await pool.spawn(count - 1, m.generation, m.directory);
      pool.workers[count - 1] = w;
      await pool.waitBooted(w);
    } catch (err) {
      w?.kill('SIGKILL');
      // A SIGTTOU while it booted removed it (it exits while booting): that is no failure, and the count
      // is the later resize's, not to be put back.
      if (w !== undefined && pool.workers[count - 1] !== w) return;
      logEvent(
        log,
        'workers.scale.failed',
        { err },
        `adding worker ${count - 1} failed: ${errorMessage(err)}`,
      );
      m.resized(previous);
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
