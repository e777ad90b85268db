// Cluster mode: the master holds every listening socket for its whole life, never accepts and never
// loads the app. Workers borrow slots over SCM_RIGHTS.
//
// Invariant: after first boot every slot has at least one booted worker accepting on it. Slots are added
// to a worker before they are released from another (`rebalance`), replacements boot before the worker
// they replace drains (phased restart, crash recovery lends the dead worker's slots to a live one).
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import { publishPorts, resolveAppFile } from './app.js';
import {
  closeLeftovers,
  closeListeners,
  formatAddress,
  formatInheritEnv,
  type Listener,
  logActivated,
  openListeners,
  parseInheritEnv,
  readSocketActivation,
  tcpPorts,
} from './binder.js';
import { errorMessage, NserveError } from './errors.js';
import {
  checkLeaks,
  formatLeakEnv,
  inspect,
  leakCandidates,
  type ProcessFds,
  reportInheritedLeaks,
  warnOnGrowth,
} from './fds.js';
import { runHooks } from './hooks.js';
import * as native from './native.js';
import { removePidfile, writePidfile } from './pidfile.js';
import { type FromWorker, WORKER_ENV } from './protocol.js';
import { bootCheck, execSelf, ownCommandLine } from './restart.js';
import { installSignalHandlers } from './signals.js';
import { identityEnv, type RunContext } from './single.js';
import {
  type ControlAction,
  type ControlAnswer,
  type Controller,
  listenerViews,
  type RestartRecord,
  type Stats,
} from './status.js';
import { MAIN_PROCESS_ENV, reapOrphansAsInit, startWatchdog } from './systemd.js';
import { VERSION } from './version.js';
import { WorkerHandle } from './worker-handle.js';

type Phase = 'booting' | 'running' | 'restarting' | 'stopping';

const CRASH_WINDOW_MS = 10_000;
const MAX_BACKOFF_MS = 30_000;

export async function runMaster(ctx: RunContext): Promise<void> {
  const master = new Master(ctx);
  if (ctx.env.NSERVE_WORKERS === undefined) {
    await master.start();
    await ctx.onServing?.(master);
    return;
  }
  // After a hot restart's exec the control server comes back as soon as the old workers are adopted, not
  // once the new ones booted, so `nserve ctl restart --wait` can follow the restart to its end.
  const starting = master.start();
  starting.catch(() => {}); // awaited below; don't let a rejection go unhandled meanwhile
  await ctx.onServing?.(master);
  await starting;
}

class Master implements Controller {
  private readonly config;
  private readonly log;
  private listeners: Listener[] = [];
  private readonly slotFds = new Map<string, number>();
  /** The current generation, by worker index. */
  private workers: WorkerHandle[] = [];
  /** Workers of an older generation still draining. */
  private readonly retiring = new Set<WorkerHandle>();
  private count: number;
  private directory = '';
  private readonly history;
  private generation = 0;
  private phase: Phase = 'booting';
  private crashes: number[] = [];
  private rebalancing: Promise<void> = Promise.resolve();
  private healthTimer: NodeJS.Timeout | undefined;
  private readonly spawnTimers = new Set<NodeJS.Timeout>();
  /** Worker indexes with a replacement scheduled (back-off timer running). */
  private readonly pendingReplacement = new Set<number>();

  constructor(private readonly ctx: RunContext) {
    this.config = ctx.config;
    this.log = ctx.log;
    this.count = ctx.config.workers;
    this.history = ctx.history;
  }

  async start(): Promise<void> {
    const { config, log } = this;
    // A missing app is bad input: say so before anything is bound or spawned.
    resolveAppFile(config.app, this.resolveNewDirectory());
    const opened = openListeners(config.binds, {
      slots: config.slots,
      reusePort: true,
      backlog: config.backlog,
      inherited: [...parseInheritEnv(this.ctx.env.NSERVE_INHERIT), ...readSocketActivation(this.ctx.env)],
    });
    this.listeners = opened.listeners;
    // Workers load the app with $PORT set to the real port (listen-compat, ephemeral binds).
    publishPorts(tcpPorts(this.listeners));
    logActivated(this.listeners, log);
    startWatchdog(this.ctx.env, log);
    reapOrphansAsInit(log);
    for (const l of this.listeners) this.slotFds.set(slotKey(l), l.fd);
    installSignalHandlers((action, signal) => {
      const answer = this.perform(action);
      if (!answer.accepted) log.warn({ signal, phase: this.phase }, `${signal} ignored: ${answer.reason}`);
    }, log);
    const adopted = parseHandedWorkers(this.ctx.env.NSERVE_WORKERS);
    if (adopted.length > 0) {
      this.generation = Number(this.ctx.env.NSERVE_GENERATION ?? 0);
      await this.completeHotRestart(adopted);
      closeLeftovers(opened.leftovers);
      this.healthTimer = setInterval(() => this.checkHealth(), 1000);
      return;
    }
    const directory = this.resolveDirectory();
    const booting = Array.from({ length: this.count }, (_, i) =>
      this.spawnWorker(i, this.generation, directory),
    );
    this.workers = await Promise.all(booting);
    try {
      await Promise.all(this.workers.map((w) => this.waitBooted(w)));
    } catch (err) {
      log.fatal({ code: 'ERR_NSERVE_WORKER_BOOT', err }, `workers failed to boot: ${errorMessage(err)}`);
      await this.stopWorkers([...this.workers], 2000);
      closeListeners(this.listeners, { unlink: true });
      process.exit(1);
    }
    await this.rebalance();
    closeLeftovers(opened.leftovers);
    if (config.pidfile !== undefined) writePidfile(config.pidfile);
    this.phase = 'running';
    this.healthTimer = setInterval(() => this.checkHealth(), 1000);
    log.info(
      {
        version: VERSION,
        mode: 'cluster',
        workers: this.count,
        slots: config.slots,
        directory,
        binds: [...new Set(this.listeners.map((l) => formatAddress(l.address)))],
        pids: this.workers.map((w) => w.pid),
      },
      'nserve booted',
    );
    this.notifyReady();
    await runHooks('onBooted', config.hooks.onBooted, {}, config.hookTimeoutMs, log);
  }

  /**
   * Run a lifecycle action without awaiting it. Each handles its own expected failures; anything else is
   * logged here instead of becoming an unhandled rejection that would take the master (and the site) down.
   */
  private background(action: Promise<unknown>): void {
    action.catch((err: unknown) => {
      this.log.error({ err }, `unexpected error in the master: ${errorMessage(err)}`);
      if (this.phase === 'restarting') this.backToRunning();
    });
  }

  /** (A method, so that TypeScript does not narrow `phase` across awaits.) */
  private isStopping(): boolean {
    return this.phase === 'stopping';
  }

  /** The current generation (the array is indexed by worker index and may have holes). */
  private current(): WorkerHandle[] {
    return this.workers.filter((w): w is WorkerHandle => w !== undefined);
  }

  /**
   * A restart ended (done, stopped or abandoned): replace every worker index that has no live worker
   * (one that died meanwhile, or was not there to hand over), unless the server is stopping.
   */
  private backToRunning(): void {
    if (this.phase === 'stopping') return;
    this.phase = 'running';
    for (let i = 0; i < this.count; i++) {
      const w = this.workers[i];
      if ((w === undefined || !w.alive) && !this.pendingReplacement.has(i)) this.scheduleReplacement(i);
    }
    this.notifyReady();
  }

  private notifyReady(): void {
    native.notify(`READY=1\n${this.statusLine()}`);
  }

  /** A STATUS= line a person can read in `systemctl status`. */
  private statusLine(): string {
    const serving = this.current().filter((w) => w.serving).length;
    const requests = [...this.workers, ...this.retiring].reduce((n, w) => n + w.stats.requests, 0);
    return `STATUS=cluster: ${serving}/${this.count} workers, phase ${this.generation}, ${requests} requests`;
  }

  perform(action: ControlAction): ControlAnswer {
    if (action === 'stop' || action === 'halt') {
      if (this.phase === 'stopping') return { accepted: false, status: 409, reason: 'already stopping' };
      this.background(this.stop(action));
      return { accepted: true };
    }
    if (action === 'reload-worker-directory') {
      try {
        const directory = this.resolveDirectory();
        return { accepted: true, detail: `workers spawned from now on load ${directory}` };
      } catch (err) {
        return { accepted: false, status: 409, reason: errorMessage(err) };
      }
    }
    if (this.phase !== 'running') {
      return {
        accepted: false,
        status: 409,
        reason: this.phase === 'stopping' ? 'stopping' : `a restart is in progress (${this.phase})`,
      };
    }
    const nextRestart = (this.history.records.at(-1)?.id ?? 0) + 1;
    switch (action) {
      case 'phased-restart':
        this.background(this.phasedRestart());
        return { accepted: true, restart: nextRestart };
      case 'restart':
        this.background(this.hotRestart(Date.now()));
        return { accepted: true, restart: nextRestart };
      case 'workers+1': {
        const from = this.count; // resize() changes it synchronously
        this.background(this.resize(from + 1));
        return { accepted: true, detail: `workers: ${from} → ${from + 1}` };
      }
      case 'workers-1': {
        if (this.count <= 1) return { accepted: false, status: 409, reason: 'already at 1 worker' };
        const from = this.count;
        this.background(this.resize(from - 1));
        return { accepted: true, detail: `workers: ${from} → ${from - 1}` };
      }
    }
  }

  stats(): Stats {
    const all = [...this.workers, ...this.retiring].filter((w) => w.alive);
    return {
      version: VERSION,
      mode: 'cluster',
      pid: process.pid,
      startedAt: this.ctx.startedAt,
      phase: this.generation,
      state: this.phase,
      requests: all.reduce((n, w) => n + w.stats.requests, 0),
      inFlight: all.reduce((n, w) => n + w.stats.inFlight, 0),
      workers: all.map((w) => ({
        index: w.index,
        pid: w.pid,
        phase: w.phase,
        state: w.state,
        booted: w.bootedAt !== undefined,
        lastCheckin: new Date(w.lastCheckin).toISOString(),
        requests: w.stats.requests,
        inFlight: w.stats.inFlight,
        eventLoopDelayP99Ms: w.stats.eventLoopDelayMs,
        rss: w.stats.rss,
        directory: w.directory,
        slots: [...w.keys],
      })),
      restarts: this.history.records,
      listeners: listenerViews(this.listeners),
      fdCount: fs.readdirSync('/proc/self/fd').length,
    };
  }

  fds(): ProcessFds[] {
    const channels = [...this.workers, ...this.retiring].filter((w) => w.alive).map((w) => w.channel.fd);
    const master = {
      ...inspect(process.pid, 'master', {
        listeners: this.listeners.map((l) => l.fd),
        channels,
        control: this.ctx.controlFds ?? [],
      }),
      history: this.history.fdCounts(),
    };
    const workers: ProcessFds[] = [];
    for (const w of [...this.workers, ...this.retiring]) {
      if (!w.alive) continue;
      try {
        workers.push(inspect(w.pid, 'worker', { channels: [3] }, w.index));
      } catch {
        // exited while we looked
      }
    }
    return [master, ...workers];
  }

  /**
   * Resolve `directory` (a symlinked release) for a new generation. `this.directory`, what replacements
   * of crashed workers load, changes only once that generation serves (or on reload-worker-directory).
   */
  private resolveNewDirectory(): string {
    try {
      return fs.realpathSync(this.config.directory);
    } catch (err) {
      throw new NserveError(
        'ERR_NSERVE_BOOT_CHECK',
        `directory ${this.config.directory} cannot be resolved: ${errorMessage(err)}`,
        { cause: err },
      );
    }
  }

  private resolveDirectory(): string {
    this.directory = this.resolveNewDirectory();
    return this.directory;
  }

  // ── spawning and booting ──────────────────────────────────────────────────────────────────────────

  private async spawnWorker(index: number, phase: number, directory: string): Promise<WorkerHandle> {
    await runHooks(
      'beforeSpawn',
      this.config.hooks.beforeSpawn,
      { worker: index, phase },
      this.config.hookTimeoutMs,
      this.log,
    );
    let pair: [number, number];
    try {
      pair = native.socketpair();
    } catch (err) {
      throw new Error(`cannot spawn worker ${index}: ${errorMessage(err)}`, { cause: err });
    }
    const [masterEnd, workerEnd] = pair;
    const { file, args } = ownCommandLine();
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      [WORKER_ENV.index]: String(index),
      [WORKER_ENV.phase]: String(phase),
      [WORKER_ENV.directory]: directory,
      [WORKER_ENV.channelFd]: '3',
    };
    for (const k of MAIN_PROCESS_ENV) delete env[k];
    // libuv dup2()s workerEnd onto the child's fd 3; our copy is closed right after.
    const child = spawn(file, args, { env, stdio: ['ignore', 'inherit', 'inherit', workerEnd] });
    native.close(workerEnd);
    // spawn() reports EAGAIN/EMFILE/ENOMEM as an 'error' event (and no pid): never let it go uncaught.
    let spawnError: Error | undefined;
    child.on('error', (err) => {
      spawnError = err;
      this.log.error({ worker: index, err }, `worker ${index}: ${errorMessage(err)}`);
    });
    if (child.pid === undefined) {
      native.close(masterEnd);
      await new Promise((r) => setImmediate(r));
      throw new Error(
        `cannot spawn worker ${index}${spawnError === undefined ? '' : `: ${errorMessage(spawnError)}`}`,
      );
    }
    const w = new WorkerHandle(index, phase, child.pid, masterEnd, directory, child);
    w.on((msg) => this.onWorkerEvent(w, msg));
    this.log.info({ worker: index, workerPid: w.pid, phase }, `worker ${index} spawned`);
    return w;
  }

  private async waitBooted(w: WorkerHandle): Promise<void> {
    if (w.state === 'booted') return;
    await w.waitFor('boot', this.config.workerBootTimeoutMs, (msg) => {
      if (msg.t === 'booted') return true;
      if (msg.t === 'boot-error') throw new Error(`worker ${w.index} failed to boot: ${msg.error}`);
      if (msg.t === 'exit')
        throw new Error(`worker ${w.index} exited while booting (${msg.signal ?? `code ${msg.code}`})`);
      return undefined;
    });
  }

  private onWorkerEvent(
    w: WorkerHandle,
    msg: FromWorker | { t: 'exit'; code: number | null; signal: string | null },
  ): void {
    if (msg.t === 'leaving') {
      if (!w.serving || w.replacing || this.isStopping()) return;
      w.replacing = true;
      this.log.error(
        { worker: w.index, workerPid: w.pid, reason: msg.reason },
        `worker ${w.index} is leaving (${msg.reason}): replacing it`,
      );
      if (this.current().some((o) => o !== w && o.serving)) {
        // Its slots go to live workers before it drains; then it is replaced.
        w.state = 'draining';
        this.background(this.rebalance().then(() => this.drainWorker(w)));
      } else {
        // Nobody else could take its slots: boot the replacement first, then drain it.
        this.background(this.surgeReplace(w));
      }
      return;
    }
    if (msg.t !== 'exit') return;
    this.reap(w);
    if (this.retiring.delete(w)) return;
    const current = this.workers[w.index] === w;
    if (!current || this.phase === 'stopping' || w.bootedAt === undefined) return;
    if (this.phase === 'restarting') {
      // The restart in progress decides who serves; a worker of the current generation still missing
      // when it ends is replaced then (backToRunning). Its slots are lent now.
      this.log.error(
        { worker: w.index, workerPid: w.pid, code: msg.code, signal: msg.signal },
        `worker ${w.index} exited during a restart`,
      );
      void this.rebalance();
      return;
    }
    // Unexpected exit of a serving worker: lend its slots at once, replace it (with back-off in a loop).
    this.log.error(
      { worker: w.index, workerPid: w.pid, code: msg.code, signal: msg.signal },
      `worker ${w.index} exited unexpectedly`,
    );
    void this.rebalance();
    this.scheduleReplacement(w.index);
  }

  private scheduleReplacement(index: number): void {
    const now = Date.now();
    this.crashes = this.crashes.filter((t) => now - t < CRASH_WINDOW_MS);
    this.crashes.push(now);
    const delay =
      this.crashes.length <= 1 ? 0 : Math.min(MAX_BACKOFF_MS, 250 * 2 ** (this.crashes.length - 1));
    if (delay > 0) {
      this.log.warn(
        { worker: index, delayMs: delay, crashes: this.crashes.length },
        `workers are crashing in a loop: backing off ${delay} ms`,
      );
    }
    this.pendingReplacement.add(index);
    const timer = setTimeout(() => {
      this.spawnTimers.delete(timer);
      this.pendingReplacement.delete(index);
      if (this.phase === 'stopping' || index >= this.count) return;
      // A restart in progress replaces workers itself; backToRunning catches up afterwards.
      if (this.phase === 'restarting') return;
      this.background(this.replace(index));
    }, delay);
    this.spawnTimers.add(timer);
  }

  private async replace(index: number): Promise<void> {
    let w: WorkerHandle | undefined;
    try {
      w = await this.spawnWorker(index, this.generation, this.directory);
      this.workers[index] = w;
      await this.waitBooted(w);
    } catch (err) {
      this.log.error({ worker: index, err }, `replacing worker ${index} failed: ${errorMessage(err)}`);
      w?.kill('SIGKILL');
      if (this.phase !== 'stopping' && (w === undefined || this.workers[index] === w))
        this.scheduleReplacement(index);
      return;
    }
    await this.rebalance();
    this.log.info({ worker: index, workerPid: w.pid }, `worker ${index} replaced`);
  }

  /** Replace a serving worker surge-first: its replacement accepts on its slots before it drains. */
  private async surgeReplace(old: WorkerHandle): Promise<void> {
    let fresh: WorkerHandle | undefined;
    try {
      fresh = await this.spawnWorker(old.index, this.generation, this.directory);
      await this.waitBooted(fresh);
    } catch (err) {
      fresh?.kill('SIGKILL');
      this.log.error(
        { worker: old.index, err },
        `replacing worker ${old.index} failed, it keeps serving: ${errorMessage(err)}`,
      );
      return;
    }
    if (this.phase === 'stopping') {
      fresh.kill('SIGKILL');
      return;
    }
    this.workers[old.index] = fresh;
    this.retiring.add(old);
    await this.rebalance();
    await this.drainWorker(old);
    this.log.info({ worker: old.index, workerPid: fresh.pid }, `worker ${old.index} replaced`);
  }

  private reap(w: WorkerHandle): void {
    // Workers adopted from a previous image are not libuv's children: reap them ourselves, by PID
    // (never waitpid(-1), which would steal exits from libuv). The channel closes just before the
    // process becomes a zombie, so poll briefly.
    if (w.child !== undefined) return;
    const deadline = Date.now() + 10_000;
    const attempt = (): void => {
      let status: native.ExitStatus | null;
      try {
        status = native.waitpid(w.pid);
      } catch {
        return; // not our child, or already reaped
      }
      if (status !== null) {
        this.log.debug(
          { worker: w.index, workerPid: w.pid, code: status.code, signal: status.signal },
          'reaped',
        );
        return;
      }
      if (Date.now() < deadline) setTimeout(attempt, 20).unref();
    };
    attempt();
  }

  // ── slots ─────────────────────────────────────────────────────────────────────────────────────────

  /** The slot keys worker `index` should serve when there are `count` workers. */
  private assignment(index: number, count: number): string[] {
    const keys: string[] = [];
    const byBind = new Map<string, Listener[]>();
    for (const l of this.listeners) byBind.set(l.spec.uri, [...(byBind.get(l.spec.uri) ?? []), l]);
    for (const group of byBind.values()) {
      const slots = group.length;
      // One socket (a unix bind, a socket from systemd): every worker accepts on it.
      if (slots === 1) keys.push(slotKey(group[0]!));
      else if (slots >= count) for (let j = index; j < slots; j += count) keys.push(slotKey(group[j]!));
      else keys.push(slotKey(group[index % slots]!));
    }
    return keys;
  }

  /**
   * Bring every booted worker of the current generation to its assigned slots, lending the slots of
   * workers that are not serving to the least loaded serving one. Adds first, releases after, so no slot
   * is ever without an acceptor. Runs one at a time.
   */
  private rebalance(): Promise<void> {
    this.rebalancing = this.rebalancing
      .then(() => this.rebalanceNow())
      .catch((err: unknown) => {
        // A worker died or declined mid-pass: the situation changed, so look again shortly.
        this.log.warn({ err }, `rebalancing slots failed, retrying: ${errorMessage(err)}`);
        if (!this.isStopping()) setTimeout(() => void this.rebalance(), 50).unref();
      });
    return this.rebalancing;
  }

  private async rebalanceNow(): Promise<void> {
    const serving = this.current().filter((w) => w.serving);
    if (serving.length === 0) return;
    const want = new Map<WorkerHandle, Set<string>>(
      serving.map((w) => [w, new Set(this.assignment(w.index, this.count))]),
    );
    for (const key of this.slotFds.keys()) {
      if ([...want.values()].some((s) => s.has(key))) continue;
      // The owner is booting or dead: lend the slot to the serving worker with the fewest slots.
      const lender = serving.reduce((a, b) => (want.get(a)!.size <= want.get(b)!.size ? a : b));
      want.get(lender)!.add(key);
      this.log.info({ key, worker: lender.index }, `slot ${key} lent to worker ${lender.index}`);
    }
    await Promise.all(
      serving.map(async (w) => {
        const add = [...want.get(w)!].filter((k) => !w.keys.has(k));
        if (add.length === 0) return;
        w.send(
          { t: 'slots', slots: add.map((key) => ({ key })) },
          add.map((k) => this.slotFds.get(k)!),
        );
        await w.waitFor('accept on its slots', this.config.workerBootTimeoutMs, (m) => {
          if (m.t === 'accepting' && add.every((k) => w.keys.has(k))) return true;
          if (m.t === 'exit') throw new Error(`worker ${w.index} exited before accepting`);
          if (m.t === 'released' && add.some((k) => m.keys.includes(k))) {
            throw new Error(`worker ${w.index} declined its slots (it is draining)`);
          }
          return undefined;
        });
      }),
    );
    for (const w of serving) {
      // Release a slot only if another live worker accepts on it right now (the one that was meant to
      // take it may have died during this pass: then the next pass moves it).
      const extra = [...w.keys].filter(
        (k) => !want.get(w)!.has(k) && serving.some((o) => o !== w && o.serving && o.keys.has(k)),
      );
      if (extra.length > 0 && w.serving) w.send({ t: 'release', keys: extra });
    }
  }

  // ── restarts and resizing ─────────────────────────────────────────────────────────────────────────

  /**
   * Cluster hot restart, old image side: run the hooks, then re-exec keeping the slots and the channels
   * to the running workers open. The workers never notice: they keep accepting throughout.
   */
  private async hotRestart(requestedAt: number): Promise<void> {
    const { log, config } = this;
    this.phase = 'restarting';
    native.notify(`RELOADING=1\nMONOTONIC_USEC=${process.hrtime.bigint() / 1000n}`);
    const record = this.history.begin('hot');
    log.info({ phase: this.generation + 1 }, 'hot restart: started');
    // The new master image must be able to start (config file, directory, app file): if it could not,
    // the exec would take every slot down with it. The new code itself is checked by booting the new
    // workers while the old ones serve.
    const check = await bootCheck(config.workerBootTimeoutMs, log, 'config', this.ctx.launchCwd);
    if (!check.ok) {
      this.history.finish(record, 'failed', check.error);
      log.error(
        { code: 'ERR_NSERVE_BOOT_CHECK', error: check.error },
        `hot restart abandoned, old workers keep serving: ${check.error}`,
      );
      this.backToRunning();
      return;
    }
    if (this.isStopping()) {
      this.history.finish(record, 'failed', 'stopped during the restart');
      return;
    }
    const handed = [...this.current(), ...this.retiring].filter((w) => w.alive);
    const keepFds = [...this.listeners.map((l) => l.fd), ...handed.map((w) => w.channel.fd)];
    const keep = new Set(keepFds);
    const candidates = leakCandidates(keep);
    await runHooks('onRestart', config.hooks.onRestart, {}, config.hookTimeoutMs, log);
    if (this.phase !== 'restarting') {
      this.history.finish(record, 'failed', 'stopped during the restart');
      return;
    }
    const leaks = checkLeaks(candidates, keep, config.leakPolicy, log);
    if (leaks.refuse) {
      const error = `descriptors would leak into the restarted master: ${leaks.leaks.map((l) => `${l.fd} (${l.target})`).join(', ')}`;
      this.history.finish(record, 'failed', error);
      log.error(
        { code: 'ERR_NSERVE_FD_LEAK' },
        `hot restart refused (leakPolicy refuse), workers keep serving: ${error}`,
      );
      this.backToRunning();
      return;
    }
    for (const w of handed) w.channel.detach();
    const env = {
      NSERVE_INHERIT: formatInheritEnv(this.listeners),
      NSERVE_WORKERS: JSON.stringify(
        handed.map(
          (w): HandedWorker => ({
            index: w.index,
            pid: w.pid,
            phase: w.phase,
            fd: w.channel.fd,
            directory: w.directory,
            keys: [...w.keys],
            draining: !w.serving,
          }),
        ),
      ),
      NSERVE_GENERATION: String(this.generation),
      NSERVE_LEAKED: config.leakPolicy === 'warn' ? formatLeakEnv(leaks.leaks) : '',
      ...identityEnv(this.ctx),
    };
    try {
      execSelf({
        keepFds,
        env,
        restart: { count: this.ctx.restart.count, requestedAt },
        log,
        cwd: this.ctx.launchCwd,
      });
    } catch (err) {
      for (const w of handed) w.channel.reattach();
      this.history.finish(record, 'failed', errorMessage(err));
      log.error(
        { code: 'ERR_NSERVE_EXEC', err },
        `hot restart: exec failed, workers keep serving: ${errorMessage(err)}`,
      );
      this.backToRunning();
    }
  }

  /**
   * Cluster hot restart, new image side: adopt the old workers (still serving), boot a new generation
   * that does not accept yet, then drain the old workers and only when all have exited let the new
   * ones accept. Old and new code never serve side by side; connections arriving in between wait in
   * the slots' accept queues. A new worker that fails to boot abandons the restart; the old ones go on.
   */
  private async completeHotRestart(handed: HandedWorker[]): Promise<void> {
    const { log } = this;
    this.phase = 'restarting';
    reportInheritedLeaks(this.ctx.env.NSERVE_LEAKED, log);
    const old = handed.map((h) => {
      native.setCloexec(h.fd, true);
      const w = new WorkerHandle(h.index, h.phase, h.pid, h.fd, h.directory, undefined, { keys: h.keys });
      if (h.draining) w.state = 'draining';
      w.on((msg) => this.onWorkerEvent(w, msg));
      return w;
    });
    // Indexed by worker index: a worker that was not alive to hand over leaves a hole, filled when the
    // restart ends (backToRunning). A second worker for an index (still draining) is retiring.
    this.workers = [];
    for (const w of old) {
      if (w.serving && this.workers[w.index] === undefined && w.index < this.count) this.workers[w.index] = w;
      else this.retiring.add(w);
    }
    // Until the new generation serves, replacements load what the old workers run.
    this.directory = old[0]?.directory ?? this.directory;
    const record = this.history.current();
    const generation = this.generation + 1;
    let directory: string;
    try {
      directory = this.resolveNewDirectory();
    } catch (err) {
      this.history.finish(record, 'failed', errorMessage(err));
      log.error(
        { code: 'ERR_NSERVE_BOOT_CHECK', err },
        `hot restart abandoned, old workers keep serving: ${errorMessage(err)}`,
      );
      this.backToRunning();
      return;
    }
    log.info(
      { adopted: old.map((w) => w.pid), phase: generation, directory },
      'hot restart: new master image adopted the workers; booting new workers',
    );
    const fresh: WorkerHandle[] = [];
    try {
      for (let i = 0; i < this.count; i++) fresh.push(await this.spawnWorker(i, generation, directory));
      await Promise.all(fresh.map((w) => this.waitBooted(w)));
      if (this.isStopping()) throw new Error('the server is stopping');
    } catch (err) {
      for (const w of fresh) w.kill('SIGKILL');
      this.history.finish(record, 'failed', errorMessage(err));
      log.error(
        { code: 'ERR_NSERVE_WORKER_BOOT', err },
        `hot restart abandoned, old workers keep serving: ${errorMessage(err)}`,
      );
      this.backToRunning();
      return;
    }
    const silentFrom = Date.now();
    for (const w of old) this.retiring.add(w);
    this.workers = fresh;
    this.directory = directory;
    await Promise.all(old.filter((w) => w.alive).map((w) => this.drainWorker(w)));
    this.generation = generation;
    await this.rebalance();
    if (record !== undefined) {
      record.fds = fs.readdirSync('/proc/self/fd').length;
      record.workerFds = fresh.map((w) => fdCountOf(w.pid));
    }
    this.history.finish(record, 'ok');
    warnOnGrowth(this.history.fdCounts(), log);
    const requestedAt = this.ctx.restart.requestedAt;
    log.info(
      {
        phase: generation,
        pids: fresh.map((w) => w.pid),
        pauseMs: Date.now() - silentFrom,
        ...(requestedAt === undefined ? {} : { restartMs: Date.now() - requestedAt }),
      },
      'hot restart: done',
    );
    this.backToRunning();
  }

  private async phasedRestart(): Promise<void> {
    const { log } = this;
    this.phase = 'restarting';
    const started = Date.now();
    native.notify(`RELOADING=1\nMONOTONIC_USEC=${process.hrtime.bigint() / 1000n}`);
    const record: RestartRecord = this.history.begin('phased');
    const generation = this.generation + 1;
    let replaced = 0;
    try {
      const directory = this.resolveNewDirectory();
      log.info({ phase: generation, directory }, 'phased restart: started');
      for (let index = 0; index < this.count; index++) {
        const old = this.workers[index];
        const fresh = await this.spawnWorker(index, generation, directory);
        try {
          await this.waitBooted(fresh);
          if (this.isStopping()) throw new Error('the server is stopping');
        } catch (err) {
          fresh.kill('SIGKILL');
          throw err;
        }
        this.workers[index] = fresh;
        if (old?.alive) this.retiring.add(old);
        await this.rebalance();
        if (old?.alive) await this.drainWorker(old);
        replaced++;
        log.info(
          { worker: index, workerPid: fresh.pid, phase: generation },
          `phased restart: worker ${index + 1}/${this.count} replaced (phase ${generation})`,
        );
      }
      this.generation = generation;
      this.directory = directory;
      this.history.finish(record, 'ok');
      log.info({ phase: generation, ms: Date.now() - started }, 'phased restart: done');
    } catch (err) {
      if (replaced > 0) this.generation = generation;
      this.history.finish(record, 'failed', errorMessage(err));
      log.error(
        { code: 'ERR_NSERVE_WORKER_BOOT', err, replaced },
        `phased restart stopped after ${replaced}/${this.count} workers, the others keep serving: ${errorMessage(err)}`,
      );
    }
    this.backToRunning();
  }

  private async drainWorker(w: WorkerHandle): Promise<void> {
    w.state = 'draining';
    w.send({ t: 'drain' });
    const limit = this.config.shutdownTimeoutMs + this.config.hookTimeoutMs + 5000;
    try {
      // Drained means it no longer accepts and has no connection left: it will never serve again, so
      // whoever waits (a cluster hot restart's new workers) may go on without waiting for its exit.
      await w.waitFor('drain', limit, (m) => (m.t === 'drained' || m.t === 'exit' ? true : undefined));
    } catch {
      this.log.warn({ worker: w.index, workerPid: w.pid }, 'worker did not exit after draining: killing it');
      w.kill('SIGKILL');
    }
  }

  private async resize(count: number): Promise<void> {
    const previous = this.count;
    this.count = count;
    this.log.info({ from: previous, to: count }, `workers: ${previous} → ${count}`);
    if (count > previous) {
      let w: WorkerHandle | undefined;
      try {
        w = await this.spawnWorker(count - 1, this.generation, this.directory);
        this.workers[count - 1] = w;
        await this.waitBooted(w);
      } catch (err) {
        this.log.error({ err }, `adding worker ${count - 1} failed: ${errorMessage(err)}`);
        w?.kill('SIGKILL');
        this.count = previous;
        this.workers.length = previous;
        return;
      }
      await this.rebalance();
    } else {
      const removed = this.workers.slice(count).filter((w): w is WorkerHandle => w !== undefined);
      this.workers.length = count;
      const alive = removed.filter((w) => w.alive);
      for (const w of alive) this.retiring.add(w);
      // Give the remaining workers the removed workers' slots before those drain.
      await this.rebalance();
      await Promise.all(alive.map((w) => this.drainWorker(w)));
    }
  }

  // ── health and stopping ───────────────────────────────────────────────────────────────────────────

  private checkHealth(): void {
    const now = Date.now();
    if (this.phase === 'running') native.notify(this.statusLine());
    for (const w of this.current()) {
      if (w.state === 'booting' && now - w.spawnedAt > this.config.workerBootTimeoutMs) {
        this.log.error(
          { worker: w.index, workerPid: w.pid, code: 'ERR_NSERVE_BOOT_TIMEOUT' },
          `worker ${w.index} did not boot in time: killing it`,
        );
        w.kill('SIGKILL');
      } else if (w.state === 'booted' && now - w.lastCheckin > this.config.workerTimeoutMs) {
        this.log.error(
          { worker: w.index, workerPid: w.pid, silentMs: now - w.lastCheckin },
          `worker ${w.index} stopped checking in: killing it`,
        );
        w.kill('SIGKILL');
      }
    }
  }

  private async stopWorkers(workers: WorkerHandle[], timeoutMs: number): Promise<void> {
    await Promise.all(
      workers
        .filter((w) => w.alive)
        .map(async (w) => {
          w.state = 'draining';
          w.send({ t: 'drain' });
          try {
            await w.waitFor('exit', timeoutMs, (m) => (m.t === 'exit' ? true : undefined));
          } catch {
            w.kill('SIGKILL');
          }
        }),
    );
  }

  private async stop(reason: string): Promise<void> {
    this.phase = 'stopping';
    native.notify('STOPPING=1');
    clearInterval(this.healthTimer);
    for (const t of this.spawnTimers) clearTimeout(t);
    const all = [...this.workers, ...this.retiring];
    if (reason === 'halt') {
      this.log.warn('halt: killing workers without draining');
      for (const w of all) w.kill('SIGKILL');
    } else {
      this.log.info({ reason }, 'graceful stop: draining workers');
      await this.stopWorkers(all, this.config.shutdownTimeoutMs + this.config.hookTimeoutMs + 2000);
    }
    closeListeners(this.listeners, { unlink: true });
    if (this.config.pidfile !== undefined) removePidfile(this.config.pidfile);
    this.log.info('stopped');
    process.exit(0);
  }
}

/** A worker handed from the old master image to the new one (NSERVE_WORKERS, JSON). */
interface HandedWorker {
  index: number;
  pid: number;
  phase: number;
  /** The master's end of the worker's channel, kept open across the exec. */
  fd: number;
  directory: string;
  keys: string[];
  /** Already told to drain: it must never be lent a slot again. */
  draining: boolean;
}

function parseHandedWorkers(value: string | undefined): HandedWorker[] {
  if (value === undefined || value === '') return [];
  return JSON.parse(value) as HandedWorker[];
}

function fdCountOf(pid: number): number {
  try {
    return fs.readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return 0;
  }
}

function slotKey(l: Listener): string {
  return `${l.spec.uri}#${l.slot}`;
}
