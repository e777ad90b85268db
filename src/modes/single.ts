// Single mode: one process that holds the listening sockets and serves the app itself.
//
// The launcher (launcher/index.ts) owns the lifecycle, the control refusals, the announce and the stop;
// this runner boots the app, hot-restarts (single-restart.ts), drains and reports. The listening
// descriptors are owned here for the life of the PID (across hot restarts); the HTTP servers accept on dups
// of them, so stopping accepting never closes a socket and never drops its queue.
import * as fs from 'node:fs';
import { compatPorts, listenWaitMs, loadApp, publishPorts, resolveAppFile } from '../app/index.js';
import { readyProbe } from '../app/probe.js';
import { describeConfigSource } from '../config/index.js';
import {
  type ActionOptions,
  type ControlAnswer,
  lifetimeView,
  listenerViews,
  type Stats,
} from '../control/status.js';
import { describeRelease } from '../deploy/release.js';
import { logRollback, planRollback } from '../deploy/rollback.js';
import { errorMessage, NserveError } from '../errors.js';
import { type Capabilities, Launcher, type Runner, type RunnerAction } from '../launcher/index.js';
import type { RunContext } from '../launcher/run-context.js';
import {
  closeLeftovers,
  closeListeners,
  formatAddress,
  type Listener,
  logActivated,
  openListeners,
  readSocketActivation,
  removeSocketFiles,
  tcpPorts,
} from '../listen/binder.js';
import { type CertReload, LocalCerts } from '../listen/tls.js';
import { logEvent } from '../log/events.js';
import { memoryView } from '../memory/index.js';
import { durationsOf, REQUESTS } from '../metrics/requests.js';
import { singleSource } from '../metrics/single-source.js';
import { inspect, type ProcessFds, reportInheritedLeaks, warnOnGrowth } from '../os/descriptors.js';
import { reapOrphansAsInit, startWatchdog } from '../os/systemd.js';
import { describeLongLived } from '../server/drain.js';
import { AppServer } from '../server/index.js';
import { VERSION } from '../version.js';
import { hotRestartSingle, serveAll } from './single-restart.js';

/** What single mode booted: the release it serves, its sockets and the app's server. */
export interface SingleBoot {
  directory: string;
  listeners: Listener[];
  leftovers: ReturnType<typeof openListeners>['leftovers'];
  app: Awaited<ReturnType<typeof loadApp>>;
  server: AppServer;
}

export async function runSingle(ctx: RunContext): Promise<void> {
  const launcher = new Launcher(ctx, 'server');
  const boot = await bootSingle(ctx);
  const runner = new SingleRunner(ctx, launcher, boot);
  ctx.metrics?.attach(singleSource(boot.server, boot.listeners));
  await serveAll(boot.server, boot.listeners);
  ctx.guard?.disarm();
  // Binds removed from the config since the last image: close them only now that the new binds serve.
  closeLeftovers(boot.leftovers);
  runner.recordRestartDone();
  const since = ctx.restart.requestedAt === undefined ? undefined : Date.now() - ctx.restart.requestedAt;
  const n = ctx.restart.count;
  launcher.announce(
    {
      mode: 'single',
      app: boot.app.file,
      kind: boot.app.kind,
      directory: boot.directory,
      binds: boot.listeners.map((l) => formatAddress(l.address)),
      restarts: n,
      config: describeConfigSource(ctx.config),
      ...(since === undefined ? {} : { restartMs: since }),
    },
    n === 0
      ? 'nserve booted'
      : `nserve booted after hot restart #${n}${since === undefined ? '' : ` in ${since} ms`}`,
    n === 0 ? 'the app serves' : 'the new code serves',
    `single: serving, ${n} hot restarts`,
    n === 0 ? 'server.booted' : 'restart.hot.done',
  );
  reportInheritedLeaks(ctx.handoff?.leaked ?? [], ctx.log);
  startWatchdog(ctx.env, ctx.log);
  reapOrphansAsInit(ctx.log);
  warnOnGrowth(ctx.history.fdCounts(), ctx.log);
  // Once the server first serves, not after a hot restart (as in a cluster's master).
  if (ctx.handoff === undefined) warnClusterOnly(ctx);
  launcher.attach(runner);
  await ctx.onServing?.(launcher);
}

/** Resolve the release, bind (or adopt) the sockets, load the app and probe it: nothing serves yet. */
async function bootSingle(ctx: RunContext): Promise<SingleBoot> {
  const { config, log } = ctx;
  // A missing app is bad input: say so before anything is bound.
  // After an exec back (the new release's nserve could not take over) serve the release we served.
  let directory: string;
  try {
    // A rollback serves the release the hand-off pins, not what --directory's symlink names now.
    directory =
      ctx.rejected !== undefined && ctx.handoff !== undefined
        ? ctx.handoff.directory
        : (ctx.handoff?.pinned ?? fs.realpathSync(config.directory));
    resolveAppFile(config.app, directory);
  } catch (err) {
    ctx.guard?.fail(errorMessage(err));
    throw err;
  }
  const { listeners, leftovers } = openListeners(config.binds, {
    slots: 1,
    reusePort: false,
    backlog: config.backlog,
    inherited: [...(ctx.handoff?.listeners ?? []), ...readSocketActivation(ctx.env)],
  });
  logActivated(listeners, log);
  process.chdir(directory);
  publishPorts(tcpPorts(listeners));
  let app: Awaited<ReturnType<typeof loadApp>>;
  try {
    app = await loadApp(config.app, directory, {
      ports: compatPorts(tcpPorts(listeners), process.env),
      listenWaitMs: listenWaitMs(config),
      args: config.args,
    });
  } catch (err) {
    // An optimistic hot restart's new code that cannot load: back to the previous release (never
    // returns), the listeners untouched.
    ctx.guard?.fail(errorMessage(err));
    // Leave no socket file behind for an app that cannot start.
    closeListeners(listeners, { unlink: true });
    throw err;
  }
  const server = AppServer.forApp(app, config, log);
  if (config.readyProbe !== undefined) {
    // One real request through the app, privately, before any client reaches the new code.
    const failed = await readyProbe(server, config.readyProbe, config.readyProbeTimeoutMs);
    if (failed !== undefined) {
      ctx.guard?.fail(failed); // an optimistic hot restart: back to the previous release
      closeListeners(listeners, { unlink: true });
      throw new NserveError('ERR_NSERVE_READY_PROBE', failed, { usage: true });
    }
  }
  return { directory, listeners, leftovers, app, server };
}

/** Settings of workers and their hooks, given but with nothing to act on in one process. */
function warnClusterOnly({ config, log }: RunContext): void {
  const workerOnly = [
    ...(['onWorkerBoot', 'onWorkerShutdown', 'beforeSpawn'] as const).filter(
      (h) => config.hooks[h].length > 0,
    ),
    ...['slots', 'balance', 'workerMaxMemory', 'workerTimeout', 'standby'].filter(
      (k) => (config.sources[k] ?? 'default') !== 'default',
    ),
  ];
  if (workerOnly.length > 0)
    logEvent(
      log,
      'config.worker-only.ignored',
      { settings: workerOnly },
      `${workerOnly.join(', ')} configured: ${workerOnly.length === 1 ? 'it applies' : 'they apply'} in cluster mode only (-w N), not in single mode`,
    );
}

class SingleRunner implements Runner {
  readonly capabilities: Capabilities;
  private readonly certs: LocalCerts;

  constructor(
    private readonly ctx: RunContext,
    readonly launcher: Launcher,
    readonly boot: SingleBoot,
  ) {
    this.certs = new LocalCerts(boot.server, ctx.log);
    this.capabilities = {
      has: new Set([
        'hot-restart',
        'worker-directory',
        ...(this.certs.configured ? (['certs'] as const) : []),
      ]),
      phasedAsHot: true,
      why: (missing) =>
        missing === 'certs' ? 'needs an ssl:// bind (none is configured)' : 'needs cluster mode (-w N)',
    };
  }

  /** The restart that execed this image (if any) is done: its record gets the pause, fds and release. */
  recordRestartDone(): void {
    const { history } = this.ctx;
    const restarted = history.current();
    if (restarted !== undefined) {
      restarted.fds = fs.readdirSync('/proc/self/fd').length;
      if (restarted.pausedAt !== undefined) restarted.pauseMs = Date.now() - restarted.pausedAt;
      // The old image named the release it expected; this image knows the one it serves.
      restarted.release = history.deploys.release(this.boot.directory);
    }
    history.finish(restarted, 'ok');
    history.deploys.serve(this.boot.directory);
  }

  perform(action: RunnerAction, options?: ActionOptions): ControlAnswer {
    const { config, history, log } = this.ctx;
    switch (action) {
      case 'restart':
      case 'phased-restart':
      case 'rollback': {
        let pinned: string | undefined;
        let detail: string | undefined;
        if (action === 'rollback') {
          const plan = planRollback(history, config.app, options);
          if ('refused' in plan) return { accepted: false, status: 409, reason: plan.refused };
          logRollback(log, { ...plan, kind: 'hot' }, history.deploys.serving);
          pinned = plan.release.directory;
          detail = `hot restart onto ${describeRelease(plan.release)}`;
          if (options?.kind === 'phased')
            logEvent(
              log,
              'restart.phased.downgraded',
              'phased restart needs cluster mode (-w N): doing a hot restart instead',
            );
        }
        // The restart begins its history record synchronously: take the id before.
        const restartId = (history.records.at(-1)?.id ?? 0) + 1;
        void hotRestartSingle(this.ctx, this.launcher, this.boot, Date.now(), pinned).catch(
          (err: unknown) => {
            logEvent(log, 'restart.hot.crashed', { err }, 'hot restart failed unexpectedly');
            process.exit(1);
          },
        );
        return { accepted: true, restart: restartId, ...(detail === undefined ? {} : { detail }) };
      }
      case 'reload-worker-directory':
        return { accepted: true, detail: `single mode resolves ${config.directory} at every restart` };
      case 'reload-certs': {
        const reloaded = this.reloadCerts();
        return 'refused' in reloaded
          ? { accepted: false, status: 409, reason: reloaded.refused }
          : { accepted: true, detail: 'certificates re-read' };
      }
      default:
        return { accepted: false, status: 409, reason: `${action} needs cluster mode (-w N)` };
    }
  }

  reloadCerts(): Promise<CertReload> | { refused: string } {
    return this.certs.reload(this.launcher.state);
  }

  unready(): void {
    this.boot.server.unready();
  }

  async stopServing(how: 'stop' | 'halt'): Promise<{ requests: number }> {
    const { config, log } = this.ctx;
    const { server, listeners } = this.boot;
    logEvent(log, 'stop.draining', { reason: how, inFlight: server.inFlight }, 'graceful stop: draining');
    // Connections queued when the stop begins are served; later ones are refused at once, never left
    // to hang in a queue and then reset.
    server.beginDraining();
    if (how === 'stop') server.closeListenersServingQueued(listeners.map((l) => l.fd));
    else closeListeners(listeners, { unlink: false });
    const timeoutMs = how === 'halt' ? 0 : config.shutdownTimeoutMs;
    const { forced, ...longLived } = await server.drain(timeoutMs, config.longLivedGraceMs, 'stop', {
      afterMs: config.switchTimeoutMs,
      after: 'end',
    });
    if (longLived.asked > 0)
      logEvent(log, 'drain.done', { longLived }, `drained: ${describeLongLived(longLived)}`);
    if (forced > 0)
      logEvent(
        log,
        'drain.forced',
        { forced },
        `shutdown timeout reached: closed ${forced} open connection(s)`,
      );
    removeSocketFiles(listeners);
    return { requests: server.requests };
  }

  hurry(): void {
    // The drain in progress ends once its connections are gone: close them now.
    void this.boot.server.drain(0, 0, 'stop', { afterMs: 0, after: 'end' });
  }

  stats(): Stats {
    const { ctx, boot } = this;
    return {
      version: VERSION,
      mode: 'single',
      pid: process.pid,
      startedAt: ctx.startedAt,
      phase: ctx.restart.count,
      state: this.launcher.state,
      requests: boot.server.requests,
      inFlight: boot.server.inFlight,
      lifetime: lifetimeView(ctx.history, boot.server.requests),
      directory: boot.directory,
      longLived: boot.server.longLivedOpen(),
      workers: [],
      restarts: ctx.history.records,
      listeners: listenerViews(boot.listeners),
      fdCount: fs.readdirSync('/proc/self/fd').length,
      memory: memoryView(),
      // This image's own (a hot restart starts them again: the dashboard reads a counter that went down as one).
      durations: REQUESTS.on ? durationsOf(REQUESTS.snapshot()) : null,
      ...this.certs.statsField(),
      ...ctx.history.deploys.view(),
    };
  }

  fds(): ProcessFds[] {
    const { ctx, boot } = this;
    return [
      {
        ...inspect(process.pid, 'single', {
          listeners: boot.listeners.map((l) => l.fd),
          control: ctx.controlFds ?? [],
          locks: ctx.locks?.map((l) => l.fd) ?? [],
        }),
        history: ctx.history.fdCounts(),
      },
    ];
  }
}
