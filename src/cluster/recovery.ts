// Crash recovery: what the master does when a worker exits or asks to be replaced, and the back-off
// that keeps a crash loop from spinning.
//
// A serving worker that dies has its slots lent to a live worker at once (slots.ts) and is replaced;
// a worker that asks to leave (uncaught exception, SIGTERM sent to it) is replaced surge-first: its
// replacement accepts on its slots before it drains, unless another worker can take them meanwhile.
//
// After a failed canary whose previous release is not on disk (`noWayBack`, deploy/record.ts), a replacement
// would load the failed release: a worker that leaves is not replaced while another one serves (the
// server runs with one worker less and says so), and is when none is left (never zero workers).
import { errorMessage } from '../errors.js';
import { logEvent } from '../log/events.js';
import { describeOomKill } from '../memory/index.js';
import type { Master } from './master.js';
import { replacementFits } from './memory-plan.js';
import type { WorkerHandle } from './worker-handle.js';
import type { WorkerEvent } from './worker-states.js';

const CRASH_WINDOW_MS = 10_000;
const MAX_BACKOFF_MS = 30_000;
/** Check-ins (one a second) a worker must stay over --worker-max-memory before it is replaced. */
const OVER_MEMORY_CHECKINS = 3;

/** Crashes in the last 10 s double the wait before the next replacement (0, 500 ms, 1 s, … 30 s). */
export class CrashBackoff {
  private crashes: number[] = [];

  /** Record a crash at `now`; the delay before replacing the worker. */
  next(now: number): { delayMs: number; crashes: number } {
    this.crashes = this.crashes.filter((t) => now - t < CRASH_WINDOW_MS);
    this.crashes.push(now);
    const n = this.crashes.length;
    return { delayMs: n <= 1 ? 0 : Math.min(MAX_BACKOFF_MS, 250 * 2 ** (n - 1)), crashes: n };
  }
}

export class Recovery {
  private readonly backoff = new CrashBackoff();
  private readonly timers = new Set<NodeJS.Timeout>();
  /** Worker indexes with a replacement scheduled (back-off timer running). */
  private readonly pending = new Set<number>();

  constructor(private readonly m: Master) {}

  onWorkerEvent(w: WorkerHandle, msg: WorkerEvent): void {
    if (msg.t === 'heartbeat') this.checkMemory(w, msg.rss);
    else if (msg.t === 'leaving') this.onLeaving(w, msg.reason);
    else if (msg.t === 'violation') this.onViolation(w, msg.reason);
    else if (msg.t === 'exit') this.onExit(w, msg);
  }

  /**
   * The worker broke the protocol (its app wrote to the channel, or worse): it is failed. Nothing it says
   * is believed from now on; it is replaced the way a leaving worker is (its slots move first, or its
   * replacement boots first), then drained until it exits, and killed if it does not.
   */
  private onViolation(w: WorkerHandle, reason: string): void {
    const m = this.m;
    logEvent(
      m.log,
      'worker.protocol.broken',
      { worker: w.index, workerPid: w.pid, code: 'ERR_NSERVE_PROTOCOL', reason },
      `worker ${w.index} broke the protocol (${reason}): replacing it`,
    );
    if (w.state === 'booting') {
      w.kill('SIGKILL'); // whoever waits for its boot sees it exit
      return;
    }
    this.onLeaving(w, `protocol violation: ${reason}`);
  }

  /**
   * --worker-max-memory: a worker whose RSS stays above the limit for 3 check-ins in a row (a leak, not a
   * spike) is replaced the way a phased restart replaces one: its replacement boots first.
   */
  private checkMemory(w: WorkerHandle, rss: number): void {
    const limit = this.m.config.workerMaxMemory;
    if (limit === undefined || !w.serving || w.replacing || !this.m.lifecycle.is('running')) return;
    // Its replacement would load the failed release (noWayBack): a leak is the lesser harm.
    if (this.m.history.deploys.noWayBack !== undefined) return;
    w.overMemory = rss > limit ? w.overMemory + 1 : 0;
    if (w.overMemory < OVER_MEMORY_CHECKINS) return;
    this.m.history.totals.memoryReplacements++;
    w.replacing = true;
    const mb = (n: number): string => `${Math.round(n / 1048576)} MB`;
    const over = `worker ${w.index} over --worker-max-memory (RSS ${mb(rss)} > ${mb(limit)} for ${OVER_MEMORY_CHECKINS} check-ins)`;
    const fields = { worker: w.index, workerPid: w.pid, rss, limit, code: 'ERR_NSERVE_WORKER_MEMORY' };
    // Replacement first where it fits in the memory budget (memory-plan.ts). Where it does not, booting
    // it beside the bloated worker would run the cgroup out of memory: the worker drains first, its
    // slots lent to the others, and its replacement boots in the memory it gave back.
    const others = this.m.pool.current().some((o) => o !== w && o.serving);
    if (!replacementFits(this.m) && others) {
      logEvent(
        this.m.log,
        'worker.memory.exceeded',
        { ...fields, strategy: 'drain-first' },
        `${over}: its replacement does not fit in memory beside it, so it drains first (its slots go to the other workers), then is replaced`,
      );
      this.m.background(this.drainThenReplace(w));
      return;
    }
    logEvent(
      this.m.log,
      'worker.memory.exceeded',
      { ...fields, strategy: 'replacement-first' },
      `${over}: replacing it, its replacement first${others ? '' : ' (no other worker could take its slots, fitting or not)'}`,
    );
    this.m.background(this.surgeReplace(w));
  }

  private onLeaving(w: WorkerHandle, reason: string): void {
    const m = this.m;
    // A stop requested during a restart (pendingStop) is a stop too: a group's SIGTERM reached the
    // workers as well, and each asks to leave; none is replaced only to be stopped.
    if (!w.serving || w.replacing || m.isStopping() || m.pendingStop) return;
    w.replacing = true;
    logEvent(
      m.log,
      'worker.leaving',
      { worker: w.index, workerPid: w.pid, reason },
      `worker ${w.index} is leaving (${reason}): replacing it`,
    );
    if (m.pool.current().some((o) => o !== w && o.serving)) {
      // Its slots go to live workers before it drains; then it is replaced.
      w.markDraining(`leaving: ${reason}`);
      m.background(m.slots.rebalance().then(() => m.pool.drain(w, `leaving: ${reason}`, { why: 'replace' })));
    } else {
      // Nobody else could take its slots: boot the replacement first, then drain it.
      m.background(this.surgeReplace(w));
    }
  }

  private onExit(w: WorkerHandle, exit: { code: number | null; signal: string | null }): void {
    const m = this.m;
    const oom = w.oomKill?.oom === true;
    // Not a crash of the app: the cgroup ran out of memory and the kernel chose this process.
    if (oom && w.bootedAt !== undefined && !m.isStopping())
      logEvent(
        m.log,
        'worker.oom-killed',
        {
          code: 'ERR_NSERVE_WORKER_OOM',
          worker: w.index,
          workerPid: w.pid,
          state: w.toldToDrain ? 'draining' : 'serving',
          signal: exit.signal,
          oomKills: w.oomKill?.after,
        },
        `worker ${w.index} (pid ${w.pid}) was ${describeOomKill(w.oomKill!)}: the cgroup ran out of memory`,
      );
    if (m.pool.forget(w)) return;
    const current = m.pool.workers[w.index] === w;
    if (!current || m.isStopping() || w.bootedAt === undefined) return;
    const fields = { worker: w.index, workerPid: w.pid, code: exit.code, signal: exit.signal };
    if (m.lifecycle.is('restarting')) {
      // The restart in progress decides who serves; a worker of the current generation still missing
      // when it ends is replaced then (endRestart). Its slots are lent now.
      if (!oom)
        logEvent(m.log, 'worker.exited-in-restart', fields, `worker ${w.index} exited during a restart`);
      void m.slots.rebalance();
      return;
    }
    // Unexpected exit of a serving worker: lend its slots at once, replace it (with back-off in a loop).
    if (!oom) logEvent(m.log, 'worker.exited', fields, `worker ${w.index} exited unexpectedly`);
    void m.slots.rebalance();
    this.scheduleReplacement(w.index);
  }

  scheduleReplacement(index: number): void {
    if (this.pending.has(index) || this.withheld(index)) return;
    const { delayMs, crashes } = this.backoff.next(Date.now());
    if (delayMs > 0) {
      logEvent(
        this.m.log,
        'worker.crash-loop',
        { worker: index, delayMs, crashes },
        `workers are crashing in a loop: backing off ${delayMs} ms`,
      );
    }
    this.pending.add(index);
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      this.pending.delete(index);
      const m = this.m;
      // A restart in progress replaces workers itself; endRestart catches up afterwards.
      if (!m.lifecycle.is('running') || index >= m.count) return;
      m.background(this.replace(index));
    }, delayMs);
    this.timers.add(timer);
  }

  /**
   * While only the failed release is on disk (noWayBack): true if index `index` stays empty because
   * another worker serves; false, said loudly, if it must be replaced from the failed release anyway.
   */
  private withheld(index: number): boolean {
    const { history, log, pool } = this.m;
    const deploys = history.deploys;
    if (deploys.noWayBack === undefined) return false;
    if (pool.current().some((w) => w.index !== index && w.alive && w.serving)) {
      if (!deploys.noWayBack.withheld.includes(index)) {
        const n = deploys.withhold(index, true);
        logEvent(
          log,
          'worker.not-replaced',
          { worker: index, code: 'ERR_NSERVE_NO_WAY_BACK', noWayBack: n },
          `worker ${index} is not replaced: ${n?.message}`,
        );
      }
      return true;
    }
    const n = deploys.withhold(index, false);
    logEvent(
      log,
      'worker.replaced-from-failed',
      { worker: index, code: 'ERR_NSERVE_NO_WAY_BACK', noWayBack: n },
      `no worker is left: worker ${index} is replaced from the failed release (never zero workers): ${n?.message}`,
    );
    return false;
  }

  /** Forget every scheduled replacement (the server is stopping). */
  cancel(): void {
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    this.pending.clear();
  }

  private async replace(index: number): Promise<void> {
    const m = this.m;
    let w: WorkerHandle | undefined;
    try {
      w = await m.pool.spawn(index, m.generation, m.directory);
      m.pool.install(w);
      await m.pool.waitBooted(w);
    } catch (err) {
      logEvent(
        m.log,
        'worker.replace.failed',
        { worker: index, err },
        `replacing worker ${index} failed: ${errorMessage(err)}`,
      );
      w?.kill('SIGKILL');
      if (!m.isStopping() && (w === undefined || m.pool.workers[index] === w))
        this.scheduleReplacement(index);
      return;
    }
    await m.slots.rebalance();
    logEvent(m.log, 'worker.replaced', { worker: index, workerPid: w.pid }, `worker ${index} replaced`);
  }

  /** Drain a serving worker first (its slots lent to the others), then boot its replacement. */
  private async drainThenReplace(old: WorkerHandle): Promise<void> {
    const m = this.m;
    old.markDraining('over --worker-max-memory');
    // Retiring, not current: its exit is no crash, and its index is this replacement's to fill.
    if (m.pool.workers[old.index] === old) delete m.pool.workers[old.index];
    m.pool.retiring.add(old);
    await m.slots.rebalance();
    await m.pool.drain(old, 'over --worker-max-memory', { why: 'replace' });
    if (old.alive)
      await old
        .waitFor('exit', m.config.shutdownTimeoutMs + 5000, (msg) => (msg.t === 'exit' ? true : undefined))
        .catch(() => {});
    // A restart that began meanwhile fills the empty index itself when it ends (endRestart).
    if (!m.lifecycle.is('running') || m.pool.workers[old.index] !== undefined) return;
    await this.replace(old.index);
  }

  /** Replace a serving worker surge-first: its replacement accepts on its slots before it drains. */
  private async surgeReplace(old: WorkerHandle): Promise<void> {
    const m = this.m;
    // Only for a worker no other can stand in for: with noWayBack, the failed release serves from now.
    if (m.history.deploys.noWayBack !== undefined) this.withheld(old.index);
    let fresh: WorkerHandle | undefined;
    try {
      fresh = await m.pool.spawn(old.index, m.generation, m.directory);
      await m.pool.waitBooted(fresh);
    } catch (err) {
      fresh?.kill('SIGKILL');
      old.replacing = false; // it may be tried again
      logEvent(
        m.log,
        'worker.replace.failed',
        { worker: old.index, err },
        `replacing worker ${old.index} failed, it keeps serving: ${errorMessage(err)}`,
      );
      return;
    }
    if (m.isStopping()) {
      fresh.kill('SIGKILL');
      return;
    }
    m.pool.install(fresh);
    await m.slots.rebalance();
    await m.pool.drain(old, 'replaced', { why: 'replace' });
    logEvent(
      m.log,
      'worker.replaced',
      { worker: old.index, workerPid: fresh.pid },
      `worker ${old.index} replaced`,
    );
  }

  /** Kill workers that do not boot in time or stopped checking in; their exit is handled as a crash. */
  checkHealth(now: number): void {
    const m = this.m;
    for (const w of m.pool.current()) {
      if (w.state === 'booting' && now - w.spawnedAt > m.config.workerBootTimeoutMs) {
        logEvent(
          m.log,
          'worker.boot.timeout',
          { worker: w.index, workerPid: w.pid, code: 'ERR_NSERVE_BOOT_TIMEOUT' },
          `worker ${w.index} did not boot in time: killing it`,
        );
        w.kill('SIGKILL');
      } else if (w.state === 'booted' && now - w.lastCheckin > m.config.workerTimeoutMs) {
        // What the kill resets, as of its last check-in: operators learn what their users lost.
        const { inFlight, connections, longLived } = w.stats;
        logEvent(
          m.log,
          'worker.checkin.timeout',
          {
            worker: w.index,
            workerPid: w.pid,
            code: 'ERR_NSERVE_WORKER_TIMEOUT',
            silentMs: now - w.lastCheckin,
            inFlight,
            connections,
            longLived,
          },
          `worker ${w.index} stopped checking in: killing it (at its last check-in: ${inFlight} request(s) in flight, ${connections} connection(s) open)`,
        );
        w.kill('SIGKILL');
      }
    }
  }
}
