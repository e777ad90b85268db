// The master's workers: the current generation by worker index, the retiring ones (older generations
// still draining), spawning, waiting for boot, draining, reaping.
import { type ChildProcess, spawn } from 'node:child_process';
import { runHooks } from '../app/hooks.js';
import { APP_FAILURE_CODES, appFailure } from '../app/index.js';
import type { Config } from '../config/index.js';
import { errorMessage, type NserveErrorCode } from '../errors.js';
import { logEvent } from '../log/events.js';
import type { Logger } from '../log/logger.js';
import type { OomAim } from '../memory/index.js';
import * as native from '../native/index.js';
import { MAIN_PROCESS_ENV } from '../os/systemd.js';
import { ownCommandLine } from '../restart/exec.js';
import { CHILD_ENV, type HandedWorker, PROTOCOL_VERSION, workerEnv } from '../restart/handoff.js';
import { Standbys } from './standby.js';
import { WorkerHandle } from './worker-handle.js';
import { bootExitReason, type WorkerEvent } from './worker-states.js';

export class WorkerPool {
  /** The current generation, by worker index (may have holes). */
  workers: WorkerHandle[] = [];
  /** Workers of an older generation (or removed indexes) still draining. */
  readonly retiring = new Set<WorkerHandle>();
  /** Worker processes started ahead of need (--standby). */
  readonly standbys: Standbys;

  constructor(
    private readonly config: Config,
    private readonly log: Logger,
    private readonly onEvent: (w: WorkerHandle, msg: WorkerEvent) => void,
    /** Aims the OOM killer at booting workers and tells its kills from crashes (cluster/master.ts). */
    private readonly oom?: OomAim,
    /** The server is stopping: no standby is started. */
    stopping: () => boolean = () => false,
  ) {
    this.standbys = new Standbys(
      config.standby,
      log,
      oom,
      () => this.startProcess({ [CHILD_ENV.standby]: '3' }, 'a standby worker'),
      stopping,
    );
  }

  /** Every worker's first listener: its OOM score follows its state; an exit is judged before anyone hears of it. */
  private listen(w: WorkerHandle): void {
    w.on((msg) => {
      if (msg.t === 'booted') {
        this.oom?.serving(w.pid);
        // One booted: the standby it may have taken is replaced now, off the boot's path.
        this.standbys.booted();
      } else if (msg.t === 'exit' && this.oom !== undefined) {
        const verdict = this.oom.judgeExit(msg.signal);
        if (verdict.oom) w.oomKill = verdict;
      }
      this.onEvent(w, msg);
    });
  }

  /** The current generation (without holes). */
  current(): WorkerHandle[] {
    return this.workers.filter((w): w is WorkerHandle => w !== undefined);
  }

  /** Every live worker: current and retiring. */
  alive(): WorkerHandle[] {
    return [...this.current(), ...this.retiring].filter((w) => w.alive);
  }

  /** Every worker object still tracked, alive or not. */
  tracked(): WorkerHandle[] {
    return [...this.current(), ...this.retiring];
  }

  /** Make `w` the current worker for its index; the one it replaces (if alive) retires. */
  install(w: WorkerHandle): void {
    const old = this.workers[w.index];
    this.workers[w.index] = w;
    if (old !== undefined && old !== w && old.alive) this.retiring.add(old);
  }

  /** A worker ended: true if it was retiring (nothing more to do). */
  forget(w: WorkerHandle): boolean {
    return this.retiring.delete(w);
  }

  async spawn(index: number, generation: number, directory: string): Promise<WorkerHandle> {
    const { config, log } = this;
    await runHooks(
      'beforeSpawn',
      config.hooks.beforeSpawn,
      { worker: index, phase: generation },
      config.hookTimeoutMs,
      log,
    );
    const woken = await this.wakeStandby(index, generation, directory);
    if (woken !== undefined) return woken;
    const { child, masterEnd } = await this.startProcess(
      workerEnv({ index, generation, directory, channelFd: 3 }),
      `worker ${index}`,
    );
    return this.track(
      new WorkerHandle({ index, generation, pid: child.pid, channelFd: masterEnd, directory, child }, log),
      false,
    );
  }

  /**
   * Start nserve again (this command line, `extraEnv` on this environment), its channel on its fd 3.
   * Throws, naming `what`, when the process cannot be started (EMFILE, EAGAIN, ENOMEM).
   */
  private async startProcess(
    extraEnv: Record<string, string>,
    what: string,
  ): Promise<{ child: ChildProcess & { pid: number }; masterEnd: number }> {
    const { log } = this;
    let pair: [number, number];
    try {
      pair = native.socketpair();
    } catch (err) {
      throw new Error(`cannot spawn ${what}: ${errorMessage(err)}`, { cause: err });
    }
    const [masterEnd, workerEnd] = pair;
    const { file, args } = ownCommandLine();
    const env: NodeJS.ProcessEnv = { ...process.env, ...extraEnv };
    for (const k of MAIN_PROCESS_ENV) delete env[k];
    // libuv dup2()s workerEnd onto the child's fd 3; our copy is closed right after.
    const child = spawn(file, args, { env, stdio: ['ignore', 'inherit', 'inherit', workerEnd] });
    native.close(workerEnd);
    // spawn() reports EAGAIN/EMFILE/ENOMEM as an 'error' event (and no pid): never let it go uncaught.
    let spawnError: Error | undefined;
    child.on('error', (err) => {
      spawnError = err;
      logEvent(log, 'worker.spawn.failed', { err }, `${what}: ${errorMessage(err)}`);
    });
    if (child.pid === undefined) {
      native.close(masterEnd);
      await new Promise((r) => setImmediate(r));
      throw new Error(
        `cannot spawn ${what}${spawnError === undefined ? '' : `: ${errorMessage(spawnError)}`}`,
      );
    }
    return { child: child as ChildProcess & { pid: number }, masterEnd };
  }

  /** A new worker's first steps in the pool: the OOM killer's first choice, listened to, logged. */
  private track(w: WorkerHandle, standby: boolean): WorkerHandle {
    // The OOM killer's first choice until it booted: a failed boot costs no serving process.
    this.oom?.booting(w.pid);
    this.listen(w);
    logEvent(
      this.log,
      'worker.spawned',
      { worker: w.index, workerPid: w.pid, generation: w.generation, ...(standby ? { standby } : {}) },
      `worker ${w.index} spawned${standby ? ' (a standby woken)' : ''}`,
    );
    return w;
  }

  /** Worker `index` from a standby (--standby), if one can be woken: undefined, start a fresh one. */
  private async wakeStandby(
    index: number,
    generation: number,
    directory: string,
  ): Promise<WorkerHandle | undefined> {
    const s = await this.standbys.take(index, generation, directory);
    if (s === undefined) return undefined;
    return this.track(
      new WorkerHandle(
        { index, generation, pid: s.pid, channelFd: s.fd, directory, child: s.child },
        this.log,
      ),
      true,
    );
  }

  /** Take over the workers the previous master image handed over (cluster hot restart). */
  adopt(handed: readonly HandedWorker[]): WorkerHandle[] {
    return handed.map((h) => {
      native.setCloexec(h.fd, true);
      const w = new WorkerHandle(
        {
          index: h.index,
          generation: h.generation,
          pid: h.pid,
          channelFd: h.fd,
          directory: h.directory,
          child: undefined,
          adopted: { keys: h.keys, offered: h.offered, draining: h.draining, booted: h.booted },
        },
        this.log,
      );
      this.listen(w);
      return w;
    });
  }

  /** The live workers as the hand-off describes them to the next master image. */
  handOver(workers: readonly WorkerHandle[]): HandedWorker[] {
    return workers.map((w) => ({
      index: w.index,
      pid: w.pid,
      generation: w.generation,
      fd: w.channel.fd,
      directory: w.directory,
      keys: [...w.keys],
      offered: w.offeredKeys,
      draining: w.state === 'draining',
      booted: w.bootedAt !== undefined,
      protocol: PROTOCOL_VERSION,
    }));
  }

  async waitBooted(w: WorkerHandle): Promise<void> {
    if (w.state === 'booted') return;
    await w.waitFor('boot', this.config.workerBootTimeoutMs, (msg) => {
      if (msg.t === 'booted') return true;
      if (msg.t === 'boot-error') {
        // The app's own failure (load error, no usable export) keeps its message and code: bad input.
        if (msg.code !== undefined && APP_FAILURE_CODES.has(msg.code))
          throw appFailure(msg.code as NserveErrorCode, msg.error);
        throw new Error(`worker ${w.index} failed to boot: ${msg.error}`);
      }
      if (msg.t === 'exit') throw new Error(bootExitReason(w, msg));
      return undefined;
    });
  }

  /**
   * Tell `w` to drain; resolves once it drained (it will never serve again) or exited, or was killed.
   * Its long-lived connections get `longLivedGraceMs` (default --long-lived-grace) before it ends them.
   */
  async drain(
    w: WorkerHandle,
    reason: string,
    how: { why: 'restart' | 'stop' | 'replace'; longLivedGraceMs?: number },
  ): Promise<void> {
    w.markDraining(reason);
    w.send({
      t: 'drain',
      longLivedGraceMs: how.longLivedGraceMs ?? this.config.longLivedGraceMs,
      reason: how.why,
    });
    const limit = this.config.shutdownTimeoutMs + this.config.hookTimeoutMs + 5000;
    try {
      // Drained means it no longer accepts and has no connection left: whoever waits (a cluster hot
      // restart's new workers) may go on without waiting for its exit.
      await w.waitFor('drain', limit, (m) => (m.t === 'drained' || m.t === 'exit' ? true : undefined));
    } catch {
      logEvent(
        this.log,
        'worker.drain.killed',
        { worker: w.index, workerPid: w.pid },
        'worker did not exit after draining: killing it',
      );
      w.kill('SIGKILL');
    }
  }

  /**
   * A hot restart's old workers, while they still serve: tell their apps, and wait (at most the grace)
   * until their long-lived connections are gone, so that the hand-over pause does not wait for them.
   */
  async notice(workers: readonly WorkerHandle[]): Promise<void> {
    const graceMs = this.config.longLivedGraceMs;
    await Promise.all(
      workers.map(async (w) => {
        w.send({ t: 'notice', graceMs });
        try {
          await w.waitFor('notice its long-lived connections', graceMs + 1000, (m) =>
            m.t === 'quiet' || m.t === 'exit' ? true : undefined,
          );
        } catch {
          // it did not answer: the drain ends them anyway
        }
      }),
    );
  }

  /** Drain every live worker and wait for each to exit (killing those that take too long). */
  async stopAll(timeoutMs: number): Promise<void> {
    void this.standbys.drop();
    await Promise.all(
      this.alive().map(async (w) => {
        w.markDraining('the server is stopping');
        w.send({ t: 'drain', longLivedGraceMs: this.config.longLivedGraceMs, reason: 'stop' });
        try {
          await w.waitFor('exit', timeoutMs, (m) => (m.t === 'exit' ? true : undefined));
        } catch {
          w.kill('SIGKILL');
        }
      }),
    );
  }

  killAll(): void {
    for (const w of this.tracked()) w.kill('SIGKILL');
    void this.standbys.drop();
  }
}
