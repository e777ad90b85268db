// The master's side of --standby: worker processes started ahead of need, waiting on their channel for a
// wake (standby-wake.ts is theirs). The pool (pool.ts) keeps --standby of them, takes one for each worker
// it needs (a restart's, a replacement's, one more for SIGTTIN) and starts another once that one booted.
// A standby holds no slot and no app: killing it loses nothing, so it is the OOM killer's first choice,
// and a stop or a hot restart's exec just kills the idle ones.
import type { ChildProcess } from 'node:child_process';
import { errorMessage } from '../errors.js';
import { logEvent } from '../log/events.js';
import type { Logger } from '../log/logger.js';
import type { OomAim } from '../memory/index.js';
import * as native from '../native/index.js';
import { PROTOCOL_VERSION } from '../restart/handoff.js';
import { Channel } from './channel.js';
import { codeStamp, isStandbyHello, type StandbyHello, type StandbyWake } from './standby-wake.js';

/** How long a restart waits for a standby still starting before it starts a worker afresh. */
const READY_WAIT_MS = 10_000;
/** Standby failures in a row after which none is started any more (until a worker boots). */
const MAX_FAILURES = 3;
const RETRY_MS = 1000;

type StartProcess = () => Promise<{ child: ChildProcess & { pid: number }; masterEnd: number }>;

/** The pool's standbys: kept at --standby, taken one per new worker, held through a hot restart's exec. */
export class Standbys {
  /** Started, oldest first; and how many are being started. */
  private readonly list: Standby[] = [];
  private starting = 0;
  private held = false;
  /** Standbys that failed to start, or died idle, in a row (reset when a worker boots). */
  private failures = 0;

  constructor(
    private readonly count: number,
    private readonly log: Logger,
    private readonly oom: OomAim | undefined,
    private readonly start: StartProcess,
    private readonly stopping: () => boolean,
  ) {}

  /**
   * A standby woken as worker `index`, if one is there and runs the nserve code on disk now: one still
   * starting is waited for (it is ahead of a process started now). Undefined: start a fresh one.
   */
  async take(index: number, generation: number, directory: string): Promise<Standby | undefined> {
    const s = this.list.shift();
    if (s === undefined) return undefined;
    const ready = await s.ready(READY_WAIT_MS);
    const stale = ready && s.stamp !== codeStamp();
    if (!ready || stale) {
      logEvent(
        this.log,
        'worker.standby.discarded',
        { workerPid: s.pid, reason: stale ? 'stale' : (s.failed ?? 'not ready') },
        `standby ${s.pid} not used: ${stale ? 'it runs nserve code older than what is installed now' : (s.failed ?? `not ready after ${READY_WAIT_MS} ms`)}`,
      );
      void s.discard();
      return undefined;
    }
    try {
      s.wake(index, generation, directory);
    } catch (err) {
      logEvent(this.log, 'worker.standby.discarded', { workerPid: s.pid, err }, errorMessage(err));
      void s.discard();
      return undefined;
    }
    return s;
  }

  /** A worker booted: the standby it may have taken is replaced now, off the boot's path. */
  booted(): void {
    this.failures = 0;
    this.fill();
  }

  /** Start standbys up to --standby, unless held (a hot restart, a stop) or given up on. */
  fill(): void {
    while (
      !this.held &&
      !this.stopping() &&
      this.failures < MAX_FAILURES &&
      this.list.length + this.starting < this.count
    ) {
      this.starting++;
      void this.startOne().then((s) => {
        this.starting--;
        if (s === undefined) return;
        if (this.held) void s.discard();
        else this.list.push(s);
      });
    }
  }

  private async startOne(): Promise<Standby | undefined> {
    let started: Awaited<ReturnType<StartProcess>>;
    try {
      started = await this.start();
    } catch (err) {
      this.failed(errorMessage(err));
      return undefined;
    }
    const s = new Standby(started.child, started.masterEnd, (gone) => this.onExit(gone));
    // Idle, it holds nothing: the first process the OOM killer should take.
    this.oom?.booting(s.pid);
    logEvent(this.log, 'worker.standby.started', { workerPid: s.pid }, `standby worker ${s.pid} started`);
    return s;
  }

  private onExit(s: Standby): void {
    const at = this.list.indexOf(s);
    if (at !== -1) this.list.splice(at, 1);
    void s.discard();
    if (this.held) return;
    const oom = this.oom?.judgeExit(s.child.signalCode);
    // Judged, and started again, a moment later: not in a loop with a process that cannot start, and
    // not at all when the exit was a group's stop signal (systemd's KillMode=control-group, Ctrl-C)
    // that reached the master too.
    setTimeout(() => {
      if (this.held || this.stopping()) return;
      this.failed(`standby ${s.pid} ${oom?.oom ? 'was killed by the OOM killer' : (s.failed ?? 'exited')}`);
      this.fill();
    }, RETRY_MS).unref();
  }

  /** A standby could not start or died idle; after MAX_FAILURES in a row, none is started any more. */
  private failed(why: string): void {
    this.failures++;
    const givenUp = this.failures >= MAX_FAILURES;
    logEvent(
      this.log,
      givenUp ? 'worker.standby.disabled' : 'worker.standby.failed',
      { reason: why, failures: this.failures },
      givenUp
        ? `standby workers disabled after ${this.failures} failures in a row (${why}): new workers start from scratch`
        : `standby worker: ${why}`,
    );
  }

  /** No standby is started (a hot restart, whose exec would orphan them; a stop) until `release`. */
  hold(): void {
    this.held = true;
  }

  release(): void {
    this.held = false;
    this.fill();
  }

  /** Kill the idle standbys and wait for their exit (bounded): before an exec, at a stop. */
  async drop(): Promise<void> {
    this.hold();
    await Promise.all(this.list.splice(0).map((s) => s.discard()));
  }

  /** The standbys ready to be woken, and those still starting. */
  counts(): { ready: number; starting: number } {
    const ready = this.list.filter((s) => s.stamp !== undefined).length;
    return { ready, starting: this.list.length - ready + this.starting };
  }
}

export class Standby {
  readonly pid: number;
  readonly startedAt = Date.now();
  /** Its code stamp, once it said it is ready (codeStamp). */
  stamp: string | undefined;
  /** Why it cannot be woken (it exited, or said something else than hello), once known. */
  failed: string | undefined;
  private readonly channel: Channel<StandbyHello, StandbyWake>;
  private readonly settled: Promise<void>;
  private settle: () => void = () => {};
  private readonly onExit: (code: number | null, signal: NodeJS.Signals | null) => void;

  constructor(
    readonly child: ChildProcess & { pid: number },
    readonly fd: number,
    exited: (s: Standby) => void,
  ) {
    this.pid = child.pid;
    this.settled = new Promise((r) => {
      this.settle = r;
    });
    this.channel = new Channel(fd, {
      parse: (v) => (isStandbyHello(v) ? v : 'not a standby hello'),
      message: (msg) => {
        this.stamp ??= msg.stamp;
        this.settle();
      },
      // It runs no app code yet: anything but its hello is a bug, and it is not woken.
      invalid: (reason) => {
        this.fail(`said something unexpected (${reason})`);
        child.kill('SIGKILL');
      },
      // Its exit says the rest.
      close: () => {},
    });
    this.onExit = (code, signal) => {
      this.fail(`exited before it was needed (${signal ?? `code ${code}`})`);
      exited(this);
    };
    child.once('exit', this.onExit);
  }

  private fail(why: string): void {
    this.failed ??= why;
    this.settle();
  }

  /** Ready (said hello) or failed, or `timeoutMs` passed: true when it can be woken now. */
  async ready(timeoutMs: number): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.settled, new Promise((r) => (timer = setTimeout(r, timeoutMs)))]);
    clearTimeout(timer);
    return this.stamp !== undefined && this.failed === undefined;
  }

  /**
   * Make it worker `index`: the channel goes to the worker's handle (the caller's), the process too.
   * Throws when the wake cannot be sent (it is gone).
   */
  wake(index: number, generation: number, directory: string): void {
    const msg: StandbyWake = { t: 'wake', index, generation, directory, protocol: PROTOCOL_VERSION };
    this.channel.detach();
    this.child.off('exit', this.onExit);
    try {
      native.sendFds(this.fd, [], JSON.stringify(msg));
    } catch (err) {
      this.child.once('exit', this.onExit);
      this.channel.reattach();
      throw new Error(`cannot wake standby ${this.pid}: ${errorMessage(err)}`, { cause: err });
    }
  }

  /** Kill it (idle: nothing is lost); resolves once it exited, or after `timeoutMs`. */
  async discard(timeoutMs = 2000): Promise<void> {
    const gone =
      this.child.exitCode !== null || this.child.signalCode !== null
        ? Promise.resolve()
        : new Promise<void>((r) => this.child.once('exit', () => r()));
    this.child.kill('SIGKILL');
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([gone, new Promise((r) => (timer = setTimeout(r, timeoutMs)))]);
    clearTimeout(timer);
    this.channel.close();
  }
}
