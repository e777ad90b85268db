// Cluster mode: the master holds every listening socket for its whole life, never accepts and never
// loads the app. Workers borrow slots over SCM_RIGHTS (slots.ts).
//
// This module is the cluster's runner (launcher/index.ts owns the lifecycle, the control refusals, the
// announce and the stop): boot, health checks, what each allowed control action does (control.ts), and
// stopping the workers. The workers are in pool.ts, crash recovery in recovery.ts, the restarts in
// hot-restart.ts and phased-restart.ts.
//
// A stop that arrives during a restart (SIGTERM, `ctl stop`) cancels the restart at its next step (new
// workers still booting are killed; old ones never stopped serving), then stops gracefully.

import { publishPorts, resolveAppFile } from '../app/index.js';
import { describeConfigSource } from '../config/index.js';
import type { ActionOptions, ControlAnswer, Stats } from '../control/status.js';
import { errorMessage, NserveError } from '../errors.js';
import { type Capabilities, Launcher, type Runner, type RunnerAction } from '../launcher/index.js';
import type { Lifecycle, ServerState } from '../launcher/lifecycle.js';
import type { RunContext } from '../launcher/run-context.js';
import {
  closeLeftovers,
  closeListeners,
  formatAddress,
  type Listener,
  logActivated,
  openListeners,
  readSocketActivation,
  tcpPorts,
} from '../listen/binder.js';
import type { CertReload } from '../listen/tls.js';
import { logEvent } from '../log/events.js';
import { OomAim, warnIfHotRestartCannotFit } from '../memory/index.js';
import * as native from '../native/index.js';
import type { ProcessFds } from '../os/descriptors.js';
import { reapOrphansAsInit, startWatchdog } from '../os/systemd.js';
import { setProcessTitle } from '../os/title.js';
import type { Handoff } from '../restart/handoff.js';
import { countWorkerEvent } from '../restart/history.js';
import { ClusterCerts } from './certs.js';
import { performAction } from './control.js';
import { completeHotRestart } from './hot-restart.js';
import { WorkerPool } from './pool.js';
import { Recovery } from './recovery.js';
import { MixedVersionWatch, resolveRelease } from './releases.js';
import { clusterFds, clusterStats, servingPids, statusLine } from './report.js';
import { Rebalancer, slotGroups, slotKey } from './slots.js';
import { stopWorkers } from './stop.js';
import type { WorkerHandle } from './worker-handle.js';

export async function runMaster(ctx: RunContext): Promise<void> {
  const launcher = new Launcher(ctx, 'master');
  // The cluster's metrics (the workers' events, its gauges) are loaded only when metrics are on.
  const metrics = ctx.metrics === undefined ? undefined : await import('../metrics/cluster.js');
  const master = new Master(ctx, launcher, metrics);
  if (ctx.handoff === undefined) {
    await master.start();
    await ctx.onServing?.(launcher);
    return;
  }
  // After a hot restart's exec the control server comes back as soon as the old workers are adopted, not
  // once the new ones booted, so `nserve ctl restart --wait` can follow the restart to its end.
  const starting = master.start();
  starting.catch(() => {}); // awaited below; don't let a rejection go unhandled meanwhile
  await ctx.onServing?.(launcher);
  await starting;
}

export class Master implements Runner {
  readonly config;
  readonly log;
  readonly history;
  listeners: Listener[] = [];
  readonly slotFds = new Map<string, number>();
  readonly pool: WorkerPool;
  readonly slots: Rebalancer;
  readonly recovery: Recovery;
  /** ssl:// binds: rotation (reload-certs) and what each bind serves. */
  readonly certs: ClusterCerts;
  private workerCount: number;
  private servingDirectory = '';
  private servingGeneration = 0;
  readonly capabilities: Capabilities;
  private healthTimer: NodeJS.Timeout | undefined;
  /** Booting workers are the OOM killer's first choice, the master its last (memory/oom.ts). */
  readonly oom: OomAim;
  /** Raises the mixed-version alarm when two releases serve past a restart (releases.ts). */
  readonly mixedVersions = new MixedVersionWatch(this);

  constructor(
    readonly ctx: RunContext,
    private readonly launcher: Launcher,
    clusterMetrics?: typeof import('../metrics/cluster.js'),
  ) {
    this.config = ctx.config;
    this.log = ctx.log;
    this.workerCount = ctx.config.workers;
    this.history = ctx.history;
    // A rollback: the new generation loads the release the hand-off pins.
    if (ctx.rejected === undefined) this.history.deploys.pinned = ctx.handoff?.pinned;
    this.oom = new OomAim(ctx.log, {
      ...(ctx.handoff === undefined ? {} : { seen: this.history.totals.cgroupOomKillsSeen }),
      onSeen: (n) => {
        this.history.totals.cgroupOomKillsSeen = n;
      },
    });
    this.pool = new WorkerPool(
      ctx.config,
      ctx.log,
      (w, msg) => {
        countWorkerEvent(this.history, w, msg);
        if (ctx.metrics !== undefined) clusterMetrics?.onWorkerEvent(ctx.metrics.store, w, msg, ctx.log);
        this.recovery.onWorkerEvent(w, msg);
      },
      this.oom,
      () => this.isStopping(),
    );
    this.slots = new Rebalancer({
      log: ctx.log,
      slotFds: this.slotFds,
      groups: () => slotGroups(this.listeners),
      current: () => this.pool.current(),
      count: () => this.count,
      acceptTimeoutMs: ctx.config.workerBootTimeoutMs,
      stopping: () => this.isStopping(),
    });
    this.recovery = new Recovery(this);
    this.certs = new ClusterCerts({
      log: ctx.log,
      workers: () => this.pool.alive().filter((w) => w.state !== 'draining'),
      binds: ctx.config.binds,
    });
    if (clusterMetrics !== undefined) ctx.metrics?.attach(clusterMetrics.clusterSource(this));
    this.capabilities = {
      has: new Set([
        'hot-restart',
        'phased-restart',
        'resize',
        'worker-directory',
        ...(this.certs.configured ? (['certs'] as const) : []),
      ]),
      why: () => 'needs an ssl:// bind (none is configured)',
    };
  }

  /** The configured worker count (changed by TTIN/TTOU: resized()). */
  get count(): number {
    return this.workerCount;
  }

  /** What replacements of crashed workers load: the directory of the generation that serves. */
  get directory(): string {
    return this.servingDirectory;
  }

  /** The code generation that serves (bumped by each restart that replaced a worker). */
  get generation(): number {
    return this.servingGeneration;
  }

  /** A restart's new generation serves (or, without `generation`, replacements load `directory`). */
  serves(directory: string, generation?: number): void {
    this.servingDirectory = directory;
    if (generation !== undefined) this.servingGeneration = generation;
  }

  /** The worker count changed (TTIN/TTOU, or put back after a failed resize). */
  resized(count: number): void {
    this.workerCount = count;
  }

  /** The server's lifecycle (the launcher's: only it and the restarts below change it). */
  get lifecycle(): Lifecycle<ServerState> {
    return this.launcher.lifecycle;
  }

  /** A stop asked for during a restart: it runs once the restart has given up. */
  get pendingStop(): boolean {
    return this.launcher.pendingStop;
  }

  /**
   * Bind (or adopt) the slots, wire signals, then boot the workers or complete a hot restart's hand-over,
   * and announce. Long on purpose: each step's failure has its own way out (the slots closed, the
   * workers stopped), and they read in the order the master lives them.
   */
  async start(): Promise<void> {
    const { config, log, ctx } = this;
    // A missing app is bad input: say so before anything is bound or spawned.
    resolveAppFile(config.app, this.resolveNewDirectory());
    const opened = openListeners(config.binds, {
      slots: config.slots,
      reusePort: true,
      backlog: config.backlog,
      inherited: [...(ctx.handoff?.listeners ?? []), ...readSocketActivation(ctx.env)],
    });
    this.listeners = opened.listeners;
    // Workers load the app with $PORT set to the real port (listen-compat, ephemeral binds).
    publishPorts(tcpPorts(this.listeners));
    logActivated(this.listeners, log);
    startWatchdog(ctx.env, log);
    reapOrphansAsInit(log);
    for (const l of this.listeners) this.slotFds.set(slotKey(l), l.fd);
    // Last resort. The master runs no app code, so an exception reaching the top is a bug in nserve.
    // Exiting would close every slot (and the workers exit when the master goes): the site would go
    // down. Logging and going on keeps the slots open and the workers serving; the state the bug left
    // is at worst a restart that does not finish, which an operator can see (`ctl stats`) and redo.
    process.on('uncaughtException', (err) => this.onBug(err));
    process.on('unhandledRejection', (err) => this.onBug(err));
    const handoff = ctx.handoff;
    // Once per server, not per image: a hot restart's exec changes nothing about the cgroup.
    if (handoff === undefined) this.oom.announce();
    if (handoff !== undefined && handoff.workers.length > 0) {
      this.servingGeneration = handoff.generation;
      // The handed-over workers are adopted in completeHotRestart's first, synchronous step; only then
      // do signals reach us. A SIGTERM that arrived during the exec is then a stop during a restart: the
      // restart gives up and the adopted workers drain, instead of a stop with no worker to drain.
      const completing = completeHotRestart(this, handoff);
      this.launcher.attach(this);
      // Health checks from now on: a staged restart's pre-booted workers serve alone for a while.
      this.healthTimer = setInterval(() => this.onHealthTick(), 1000);
      await completing;
      closeLeftovers(opened.leftovers);
      return;
    }
    this.launcher.attach(this);
    // A hand-off without workers: whatever the previous image reported on is gone.
    if (handoff !== undefined) ctx.metrics?.store.adopted([]);
    const directory = this.resolveDirectory();
    // Booted afresh (a hand-off without workers): a rollback's pin, if any, has served its purpose.
    this.history.deploys.pinned = undefined;
    const booting = Array.from({ length: this.count }, (_, i) =>
      this.pool.spawn(i, this.generation, directory),
    );
    this.pool.workers = await Promise.all(booting);
    try {
      await Promise.all(this.pool.workers.map((w) => this.pool.waitBooted(w)));
    } catch (err) {
      // A stop while booting drains (or kills) the booting workers itself, and exits.
      if (this.isStopping()) return;
      const appFailure = err instanceof NserveError && err.usage;
      // The app's own failure is said once, by the CLI (one line and a code frame, exit 2), as in single mode.
      if (!appFailure)
        logEvent(
          log,
          'server.boot.failed',
          { code: 'ERR_NSERVE_WORKER_BOOT', err },
          `workers failed to boot: ${errorMessage(err)}`,
        );
      await this.pool.stopAll(2000);
      closeListeners(this.listeners, { unlink: true });
      if (appFailure) throw err;
      process.exit(1);
    }
    if (this.isStopping()) return;
    await this.slots.rebalance();
    if (this.isStopping()) return;
    this.history.deploys.serve(directory);
    closeLeftovers(opened.leftovers);
    this.healthTimer = setInterval(() => this.onHealthTick(), 1000);
    this.launcher.announce(
      {
        mode: 'cluster',
        workers: this.count,
        slots: config.slots,
        directory,
        binds: [...new Set(this.listeners.map((l) => formatAddress(l.address)))],
        pids: this.pool.workers.map((w) => w.pid),
        config: describeConfigSource(config),
      },
      'nserve booted',
      'workers booted',
      statusLine(this),
    );
    this.warnIfHotRestartCannotFit();
  }

  /**
   * Run a lifecycle action without awaiting it. Each handles its own expected failures; anything else is
   * logged here instead of becoming an unhandled rejection that would take the master (and the site) down.
   */
  background(action: Promise<unknown>): void {
    this.launcher.background(action, () => {
      if (this.lifecycle.is('restarting')) this.endRestart('an unexpected error');
    });
  }

  private onBug(err: unknown): void {
    try {
      logEvent(
        this.log,
        'master.bug',
        { code: 'ERR_NSERVE_MASTER_BUG', err },
        `bug in the master, slots kept open: ${errorMessage(err)}`,
      );
    } catch {
      // the log is gone too: serving matters more
    }
  }

  isStopping(): boolean {
    return this.launcher.isStopping();
  }

  /** Say at start when a cluster hot restart would not fit in the memory budget (each restart plans again). */
  warnIfHotRestartCannotFit(): void {
    warnIfHotRestartCannotFit(this.log, servingPids(this), this.count);
  }

  /** Begin a restart: returns the signal a stop aborts. */
  beginRestart(reason: string, options: { notify: boolean } = { notify: true }): AbortSignal {
    return this.launcher.beginRestart(reason, options);
  }

  /**
   * A restart ended (done, stopped or abandoned). A stop that arrived meanwhile runs now; otherwise every
   * worker index without a live worker (one that died meanwhile, or was not there to hand over) is
   * replaced.
   */
  endRestart(reason: string): void {
    this.history.deploys.pinned = undefined;
    if (!this.launcher.restartEnded()) return;
    this.pool.standbys.release();
    this.mixedVersions.restartEnded();
    this.launcher.running(reason, statusLine(this));
    for (let i = 0; i < this.count; i++) {
      const w = this.pool.workers[i];
      if (w === undefined || !w.alive) this.recovery.scheduleReplacement(i);
    }
  }

  perform(action: RunnerAction, options?: ActionOptions): ControlAnswer {
    return performAction(this, action, options);
  }

  stats(): Stats {
    return { ...clusterStats(this), ...this.history.deploys.view() };
  }

  reloadCerts(): Promise<CertReload> | { refused: string } {
    return this.certs.reload();
  }

  fds(): ProcessFds[] {
    return clusterFds(this);
  }

  /**
   * Resolve `directory` (a symlinked release) for a new generation, or the release a rollback pins; a
   * restart records it as its target (releases.ts). `this.directory`, what replacements of crashed workers
   * load, changes only once that generation serves (or on reload-worker-directory).
   */
  resolveNewDirectory(): string {
    return resolveRelease(this);
  }

  /** reload-worker-directory: what replacements of crashed workers load from now on. */
  resolveDirectory(): string {
    this.servingDirectory = this.resolveNewDirectory();
    return this.servingDirectory;
  }

  /** Handed to the next image: the parts of the hand-off the master owns. */
  handoffFor(workers: readonly WorkerHandle[]): Pick<Handoff, 'workers' | 'generation'> {
    return { workers: this.pool.handOver(workers), generation: this.generation };
  }

  // ── health and stopping ───────────────────────────────────────────────────────────────────────────

  private onHealthTick(): void {
    setProcessTitle({ role: 'master', app: this.config.app, generation: this.generation });
    if (this.lifecycle.is('running')) native.notify(`STATUS=${statusLine(this)}`);
    this.recovery.checkHealth(Date.now());
  }

  /** The stop began (before --shutdown-delay): nothing is replaced or rebalanced from now on. */
  beginStop(): void {
    clearInterval(this.healthTimer);
    this.recovery.cancel();
    this.mixedVersions.cancel();
  }

  unready(): void {
    for (const w of this.pool.alive()) w.send({ t: 'unready' });
  }

  stopServing(how: 'stop' | 'halt'): Promise<{ requests?: number | undefined }> {
    return stopWorkers(this, how);
  }

  /** A halt during a graceful stop: the workers still draining are killed (the listeners are closed). */
  hurry(): void {
    this.pool.killAll();
  }
}
