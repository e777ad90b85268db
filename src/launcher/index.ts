// The launcher: what every mode shares around the runner that serves (single, portable, cluster master).
//
// It owns the server's lifecycle (booting → running ⇄ restarting → stopping), answers control actions
// (signals, `nserve ctl`, the control API) with one table of refusals (refusals.ts), announces the boot
// (pidfile, the booted line, READY=1, onBooted), and stops: --shutdown-delay, STOPPING=1, the runner's
// drain, the pidfile, the app's held stop listeners, exit. A runner boots, restarts, drains and reports;
// it never changes the lifecycle of the server except through the methods here.
//
// A stop that arrives during a restart cancels the restart at its next step (the restart's AbortSignal),
// then stops gracefully. A halt is immediate, and during a graceful stop ends it at once.
import { setTimeout as sleep } from 'node:timers/promises';
import { runHooks } from '../app/hooks.js';
import { runHeldStopListeners } from '../app/stop-signals.js';
import { installSignalHandlers } from '../control/signal-handlers.js';
import type { ActionOptions, ControlAction, ControlAnswer, Controller, Stats } from '../control/status.js';
import { errorMessage } from '../errors.js';
import type { CertReload } from '../listen/tls.js';
import { logEvent } from '../log/events.js';
import * as native from '../native/index.js';
import type { ProcessFds } from '../os/descriptors.js';
import { recordPid, removePidfile } from '../os/pidfile.js';
import { VERSION } from '../version.js';
import { Lifecycle, SERVER_TRANSITIONS, type ServerState } from './lifecycle.js';
import { type Capabilities, refusal } from './refusals.js';
import type { RunContext } from './run-context.js';

export type { Capabilities, Capability } from './refusals.js';

/** The actions a runner carries out itself, once the launcher has let them through. */
export type RunnerAction = Exclude<ControlAction, 'stop' | 'halt'>;

/** What a mode implements; the launcher does the rest. */
export interface Runner {
  readonly capabilities: Capabilities;
  /** A restart, rollback, resize or reload the launcher allowed (the runner may still refuse). */
  perform(action: RunnerAction, options?: ActionOptions): ControlAnswer;
  /** reload-certs with its verdict (the control API waits for it), once the launcher allowed it. */
  reloadCerts?(): Promise<CertReload> | { refused: string };
  /** The stop began, before --shutdown-delay: nothing new is started (replacements, health checks). */
  beginStop?(): void;
  /** --shutdown-delay: serve on, the health route answering 503 (load balancers take the hint). */
  unready(): void;
  /**
   * Stop serving. `stop`: connections already queued are served, later ones refused, in-flight requests
   * finish within --shutdown-timeout; `halt`: at once. Resolves with the requests answered, when known.
   */
  stopServing(how: 'stop' | 'halt'): Promise<{ requests?: number | undefined }>;
  /** A halt during a graceful stop: end what is left of it now. */
  hurry?(): void;
  stats(): Stats;
  fds?(): ProcessFds[];
}

export class Launcher implements Controller {
  readonly lifecycle: Lifecycle<ServerState>;
  private runner: Runner | undefined;
  private restartAbort: AbortController | undefined;
  private pending: 'stop' | undefined;
  private halting = false;
  /** Cuts --shutdown-delay short when a halt arrives during it. */
  private readonly haltNow = new AbortController();

  constructor(
    private readonly ctx: RunContext,
    what: 'server' | 'master',
  ) {
    this.lifecycle = new Lifecycle<ServerState>(what, 'booting', SERVER_TRANSITIONS, ctx.log);
  }

  /** The runner this launcher serves with, and the signals that reach it from now on. */
  attach(runner: Runner): void {
    this.runner = runner;
    installSignalHandlers(
      (action, signal) => {
        const answer = this.perform(action);
        if (!answer.accepted)
          logEvent(
            this.ctx.log,
            'signal.ignored',
            { signal, state: this.lifecycle.state, reason: answer.reason },
            `${signal} ignored: ${answer.reason}`,
          );
      },
      this.ctx.log,
      { certs: runner.capabilities.has.has('certs') },
    );
  }

  private get attached(): Runner {
    if (this.runner === undefined) throw new Error('launcher: no runner attached');
    return this.runner;
  }

  get state(): ServerState {
    return this.lifecycle.state;
  }

  isStopping(): boolean {
    return this.lifecycle.is('stopping');
  }

  /** A stop asked for during a restart: it runs once the restart has given up. */
  get pendingStop(): boolean {
    return this.pending !== undefined;
  }

  /** Begin a restart: the signal a stop aborts. */
  beginRestart(reason: string, options: { notify: boolean } = { notify: true }): AbortSignal {
    this.lifecycle.to('restarting', reason);
    this.restartAbort = new AbortController();
    if (options.notify) native.notify(`RELOADING=1\nMONOTONIC_USEC=${process.hrtime.bigint() / 1000n}`);
    return this.restartAbort.signal;
  }

  /**
   * A restart ended (done, stopped or abandoned). `false`: the server is stopping (a stop that arrived
   * meanwhile runs now) and the runner does nothing more; `true`: the runner resumes, then calls
   * `running()`.
   */
  restartEnded(): boolean {
    this.restartAbort = undefined;
    if (this.isStopping()) return false;
    if (this.pending !== undefined) {
      this.stopOrExit(this.pending);
      return false;
    }
    return true;
  }

  running(reason: string, status: string): void {
    this.lifecycle.to('running', reason);
    native.notify(`READY=1\nSTATUS=${status}`);
  }

  /**
   * The server serves for the first time in this image: the pidfile, the booted line, READY=1 and, once
   * per server (not after a hot restart's exec), the onBooted hooks.
   */
  announce(
    fields: Record<string, unknown>,
    message: string,
    reason: string,
    status: string,
    event: 'server.booted' | 'restart.hot.done' = 'server.booted',
  ): void {
    const { config, log } = this.ctx;
    if (config.pidfile !== undefined) recordPid(config.pidfile, log);
    this.lifecycle.to('running', reason);
    logEvent(log, event, { version: VERSION, ...fields }, message);
    native.notify(`READY=1\nSTATUS=${status}`);
    if (this.ctx.handoff === undefined)
      void runHooks('onBooted', config.hooks.onBooted, {}, config.hookTimeoutMs, log);
  }

  refuses(action: ControlAction): string | undefined {
    const gate = { state: this.lifecycle.state, pendingStop: this.pendingStop, halting: this.halting };
    return refusal(action, gate, this.attached.capabilities);
  }

  perform(action: ControlAction, options?: ActionOptions): ControlAnswer {
    const runner = this.attached;
    const refused = this.refuses(action);
    if (refused !== undefined) return { accepted: false, status: 409, reason: refused };
    if (action === 'halt' || (action === 'stop' && !this.lifecycle.is('restarting'))) {
      this.stopOrExit(action);
      return { accepted: true };
    }
    if (action === 'stop') {
      this.pending = 'stop';
      this.restartAbort?.abort();
      logEvent(
        this.ctx.log,
        'stop.during-restart',
        'stop requested during a restart: cancelling the restart, then stopping',
      );
      return { accepted: true };
    }
    if (action === 'phased-restart' && !runner.capabilities.has.has('phased-restart')) {
      logEvent(
        this.ctx.log,
        'restart.phased.downgraded',
        'phased restart needs cluster mode (-w N): doing a hot restart instead',
      );
      return runner.perform('restart', options);
    }
    return runner.perform(action, options);
  }

  reloadCerts(): Promise<CertReload> | { refused: string } {
    const runner = this.attached;
    const refused = this.refuses('reload-certs');
    if (refused !== undefined || runner.reloadCerts === undefined)
      return { refused: refused ?? 'reload-certs is not available here' };
    return runner.reloadCerts();
  }

  stats(): Stats {
    return { ...this.attached.stats(), state: this.lifecycle.state };
  }

  fds(): ProcessFds[] {
    return this.attached.fds?.() ?? [];
  }

  /**
   * Run an action without awaiting it. Each handles its own expected failures; anything else is logged
   * here instead of becoming an unhandled rejection that would take the server down.
   */
  background(action: Promise<unknown>, onError?: () => void): void {
    action.catch((err: unknown) => {
      logEvent(
        this.ctx.log,
        'master.error',
        { err },
        `unexpected error in ${this.lifecycle.state === 'stopping' ? 'a stop' : 'the server'}: ${errorMessage(err)}`,
      );
      onError?.();
    });
  }

  /**
   * Stop, and should the stop itself fail (a bug), exit 1 rather than stay in `stopping`, refusing
   * everything, until a supervisor kills the process.
   */
  private stopOrExit(how: 'stop' | 'halt'): void {
    this.stop(how).catch((err: unknown) => {
      try {
        logEvent(this.ctx.log, 'server.stop.failed', { err }, `the stop failed: ${errorMessage(err)}`);
      } finally {
        process.exit(1);
      }
    });
  }

  async stop(how: 'stop' | 'halt'): Promise<void> {
    const { config, log } = this.ctx;
    const runner = this.attached;
    if (this.isStopping()) {
      if (how === 'halt' && !this.halting) {
        this.halting = true;
        logEvent(log, 'stop.halt', 'halt during a graceful stop: ending it now');
        this.haltNow.abort();
        runner.hurry?.();
      }
      return;
    }
    this.halting = how === 'halt';
    this.lifecycle.to('stopping', how === 'halt' ? 'halt requested' : 'stop requested');
    this.restartAbort?.abort();
    runner.beginStop?.();
    if (how === 'stop' && config.shutdownDelayMs > 0) {
      // Kubernetes keeps routing to a pod for a while after SIGTERM: serve on, health answering 503.
      runner.unready();
      logEvent(
        log,
        'stop.delay.started',
        { delayMs: config.shutdownDelayMs },
        `graceful stop: serving ${config.shutdownDelayMs} ms more (--shutdown-delay)`,
      );
      await sleep(config.shutdownDelayMs, undefined, { signal: this.haltNow.signal }).catch(() => {});
    }
    native.notify('STOPPING=1');
    const { requests } = await runner.stopServing(this.halting ? 'halt' : 'stop');
    if (config.pidfile !== undefined) removePidfile(config.pidfile);
    logEvent(log, 'server.stopped', { ...(requests === undefined ? {} : { requests }) }, 'stopped');
    // A stop signal the app listens for itself (Next.js exits at once on it): its listeners run now.
    await runHeldStopListeners(config.hookTimeoutMs);
    process.exit(0);
  }
}
