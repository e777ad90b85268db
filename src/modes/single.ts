// Single mode: one process that holds the listening sockets and serves the app itself.
//
// Lifecycle: booting → running → (restarting → exec | running) → stopping → exited. A stop during a
// restart cancels it at its next step (see restart/exec.ts), then stops gracefully, as in cluster mode.
// The listening descriptors are owned here for the life of the PID (across hot restarts); the HTTP
// servers accept on dups of them, so stopping accepting never closes a socket and never drops its queue.
import * as fs from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { runHooks } from '../app/hooks.js';
import { compatPorts, listenWaitMs, loadApp, publishPorts, resolveAppFile } from '../app/index.js';
import { readyProbe } from '../app/probe.js';
import { runHeldStopListeners } from '../app/stop-signals.js';
import { describeConfigSource } from '../config/index.js';
import { installSignalHandlers } from '../control/signals.js';
import {
  type ActionOptions,
  type ControlAction,
  type ControlAnswer,
  lifetimeView,
  listenerViews,
  type Stats,
} from '../control/status.js';
import { describeRelease, realpathOr } from '../deploy/release.js';
import { logRollback, planRollback, type RollbackPlan } from '../deploy/rollback.js';
import { errorMessage, NserveError } from '../errors.js';
import {
  closeLeftovers,
  closeListeners,
  formatAddress,
  handedListeners,
  type Listener,
  logActivated,
  openListeners,
  readSocketActivation,
  removeSocketFiles,
  tcpPorts,
} from '../listen/binder.js';
import { LocalCerts } from '../listen/tls.js';
import { memoryView } from '../memory/index.js';
import { singleSource } from '../metrics/single-source.js';
import * as native from '../native/index.js';
import { inspect, reportInheritedLeaks, warnOnGrowth } from '../os/descriptors.js';
import { recordPid, removePidfile } from '../os/pidfile.js';
import { reapOrphansAsInit, startWatchdog } from '../os/systemd.js';
import { logAbandoned, newConfigProblem, prepareExec } from '../restart/prepare.js';
import { describeLongLived } from '../server/drain.js';
import { AppServer } from '../server/index.js';
import { VERSION } from '../version.js';
import { Lifecycle, SERVER_TRANSITIONS, type ServerState } from '../launcher/lifecycle.js';
import type { RunContext } from '../launcher/run-context.js';

export async function runSingle(ctx: RunContext): Promise<void> {
  const { config, log, history } = ctx;
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
  const lifecycle = new Lifecycle<ServerState>('server', 'booting', SERVER_TRANSITIONS, log);
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
  const certs = new LocalCerts(server, log);
  ctx.metrics?.attach(singleSource(server, listeners));
  await serveAll(server, listeners);
  ctx.guard?.disarm();
  // Binds removed from the config since the last image: close them only now that the new binds serve.
  closeLeftovers(leftovers);
  if (config.pidfile !== undefined) recordPid(config.pidfile, log);
  lifecycle.to('running', ctx.restart.count === 0 ? 'the app serves' : 'the new code serves');
  reportInheritedLeaks(ctx.handoff?.leaked ?? [], log);
  startWatchdog(ctx.env, log);
  reapOrphansAsInit(log);
  const restarted = history.current();
  if (restarted !== undefined) restarted.fds = fs.readdirSync('/proc/self/fd').length;
  if (restarted?.pausedAt !== undefined) restarted.pauseMs = Date.now() - restarted.pausedAt;
  // The old image named the release it expected; this image knows the one it serves.
  if (restarted !== undefined) restarted.release = history.deploys.release(directory);
  history.finish(restarted, 'ok');
  history.deploys.serve(directory);
  warnOnGrowth(history.fdCounts(), log);
  const since = ctx.restart.requestedAt === undefined ? undefined : Date.now() - ctx.restart.requestedAt;
  log.info(
    {
      version: VERSION,
      mode: 'single',
      app: app.file,
      kind: app.kind,
      directory,
      binds: listeners.map((l) => formatAddress(l.address)),
      restarts: ctx.restart.count,
      config: describeConfigSource(config),
      ...(since === undefined ? {} : { restartMs: since }),
    },
    ctx.restart.count === 0
      ? 'nserve booted'
      : `nserve booted after hot restart #${ctx.restart.count}${since === undefined ? '' : ` in ${since} ms`}`,
  );
  native.notify(`READY=1\nSTATUS=single: serving, ${ctx.restart.count} hot restarts`);
  // As in a cluster's master: once the server first serves, not after a hot restart (nor after coming
  // back from one that failed, whose count is 0 again).
  if (ctx.handoff === undefined) {
    const workerOnly = [
      ...(['onWorkerBoot', 'onWorkerShutdown', 'beforeSpawn'] as const).filter(
        (h) => config.hooks[h].length > 0,
      ),
      // Settings of the workers and their slots, given but with nothing to act on here.
      ...['slots', 'balance', 'workerMaxMemory', 'workerTimeout'].filter(
        (k) => (config.sources[k] ?? 'default') !== 'default',
      ),
    ];
    if (workerOnly.length > 0)
      log.warn(
        { settings: workerOnly },
        `${workerOnly.join(', ')} configured: ${workerOnly.length === 1 ? 'it applies' : 'they apply'} in cluster mode only (-w N), not in single mode`,
      );
    void runHooks('onBooted', config.hooks.onBooted, {}, config.hookTimeoutMs, log);
  }

  let pendingStop: 'stop' | 'halt' | undefined;
  let restartAbort: AbortController | undefined;
  const stop = async (reason: string, timeoutMs: number): Promise<void> => {
    lifecycle.to('stopping', reason);
    restartAbort?.abort();
    const graceful = timeoutMs > 0;
    if (graceful && config.shutdownDelayMs > 0) {
      // Kubernetes keeps routing to a pod for a while after SIGTERM: serve on, health answering 503.
      server.unready();
      log.info(
        { delayMs: config.shutdownDelayMs },
        `graceful stop: serving ${config.shutdownDelayMs} ms more (--shutdown-delay)`,
      );
      await sleep(config.shutdownDelayMs);
    }
    native.notify('STOPPING=1');
    log.info({ reason, inFlight: server.inFlight }, 'graceful stop: draining');
    // Connections queued when the stop begins are served; later ones are refused at once, never left
    // to hang in a queue and then reset.
    server.beginDraining();
    if (graceful) server.closeListenersServingQueued(listeners.map((l) => l.fd));
    else closeListeners(listeners, { unlink: false });
    const { forced, ...longLived } = await server.drain(timeoutMs, config.longLivedGraceMs, 'stop', {
      afterMs: config.switchTimeoutMs,
      after: 'end',
    });
    if (longLived.asked > 0) log.info({ longLived }, `drained: ${describeLongLived(longLived)}`);
    if (forced > 0) log.warn({ forced }, `shutdown timeout reached: closed ${forced} open connection(s)`);
    removeSocketFiles(listeners);
    if (config.pidfile !== undefined) removePidfile(config.pidfile);
    log.info({ requests: server.requests }, 'stopped');
    // A stop signal the app listens for itself (Next.js exits at once on it): its listeners run now.
    await runHeldStopListeners(config.hookTimeoutMs);
    process.exit(0);
  };
  const stopFor = (action: 'stop' | 'halt'): Promise<void> =>
    stop(action, action === 'halt' ? 0 : config.shutdownTimeoutMs);

  /** `pinned`: a rollback's release, served instead of re-resolving --directory. */
  const hotRestart = async (requestedAt: number, pinned?: string): Promise<void> => {
    lifecycle.to('restarting', 'hot restart requested');
    restartAbort = new AbortController();
    const record = history.begin('hot');
    // The release this restart loads: a rollback's, else --directory re-resolved.
    const target = pinned ?? realpathOr(config.directory);
    history.deploys.target(record, target, pinned !== undefined);
    native.notify(`RELOADING=1\nMONOTONIC_USEC=${process.hrtime.bigint() / 1000n}`);
    // Optimistic (the default): exec at once; the new image comes back here if the new code fails to
    // boot (restart/guard.ts). With --boot-check: boot it in a separate process first. So too when the
    // restart targets the directory that serves (an app edited in place, no release layout): the way
    // back would load the same files, so there is no old code on disk to come back to.
    // An explicit `bootCheck: false` keeps the optimistic exec even then (an app that holds a port or a
    // lock while it loads cannot pass a check that runs beside the old code).
    const inPlace = target === directory && (config.sources.bootCheck ?? 'default') === 'default';
    const optimistic = !config.bootCheck && !inPlace;
    log.info(
      { directory: config.directory, optimistic },
      optimistic
        ? 'hot restart: started'
        : config.bootCheck
          ? 'hot restart: checking that the new code boots'
          : 'hot restart: the directory that serves is the one to load (no other release to come back to): checking that the new code boots',
    );
    let drained = false;
    // What only the new image would find out, after the exec (with no way back): checked now.
    const configProblem = await newConfigProblem(ctx, pinned, listeners);
    const abandoned =
      configProblem !== undefined
        ? { code: 'ERR_NSERVE_BOOT_CHECK' as const, reason: configProblem, stopped: false }
        : await prepareExec(ctx, {
            check: optimistic ? 'none' : 'app',
            ...(pinned === undefined ? {} : { checkDirectory: pinned }),
            afterCheck: async (check) => {
              // Still serving: the app is told to close its long-lived connections (WebSockets, event
              // streams), which get the grace now; the pause after it waits for requests only.
              server.announce({ reason: 'restart', graceMs: config.longLivedGraceMs });
              await server.waitLongLived(config.longLivedGraceMs);
              if (optimistic) log.info('hot restart: draining');
              else log.info({ app: check.file, bootMs: check.ms }, 'hot restart: new code boots; draining');
              server.stopAccepting();
              record.pausedAt = Date.now();
              drained = true;
              // In single mode nothing may finish on old code: those responses end before the exec too.
              const { forced, ...longLived } = await server.drain(config.shutdownTimeoutMs, 0, 'restart', {
                afterMs: config.switchTimeoutMs,
                after: 'end',
              });
              const cut = await server.finishOnOld(config.shutdownTimeoutMs);
              if (longLived.asked > 0 || longLived.longPolls > 0 || cut > 0)
                log.info({ longLived, cut }, `drained: ${describeLongLived(longLived)}`);
              if (forced > 0)
                log.warn(
                  { forced },
                  `hot restart: closed ${forced} connection(s) still open at the shutdown timeout`,
                );
            },
            keepFds: () => listeners.map((l) => l.fd),
            handoff: (leaked) => ({
              listeners: handedListeners(listeners),
              workers: [],
              generation: 0,
              history: history.toHandoff(),
              totals: history.totalsToHandoff(server.requests),
              startedAt: ctx.startedAt,
              leaked,
              directory,
              configFile: ctx.configFileResolved,
              optimistic,
              releases: history.deploys.toHandoff(),
              ...(pinned === undefined ? {} : { pinned }),
            }),
            requestedAt,
            signal: restartAbort.signal,
          });
    restartAbort = undefined;
    history.finish(record, 'failed', abandoned.reason);
    logAbandoned(log, abandoned, 'old code');
    if (pendingStop !== undefined) return stopFor(pendingStop);
    if (drained) {
      server.resume();
      await serveAll(server, listeners);
    }
    lifecycle.to('running', 'hot restart abandoned');
    native.notify(`READY=1\nSTATUS=single: hot restart failed: ${abandoned.reason}`);
  };

  const perform = (action: ControlAction, options?: ActionOptions): ControlAnswer => {
    const state = lifecycle.state;
    switch (action) {
      case 'stop':
      case 'halt':
        if (state === 'stopping' || pendingStop !== undefined)
          return { accepted: false, status: 409, reason: 'already stopping' };
        if (state === 'restarting' && action === 'stop') {
          pendingStop = action;
          restartAbort?.abort();
          log.info('stop requested during a restart: cancelling the restart, then stopping');
          return { accepted: true };
        }
        void stopFor(action);
        return { accepted: true };
      case 'restart':
      case 'phased-restart':
      case 'rollback': {
        if (state !== 'running')
          return {
            accepted: false,
            status: 409,
            reason: `a restart is already in progress (or stopping): ${state}`,
          };
        let rollback: RollbackPlan | undefined;
        if (action === 'rollback') {
          const plan = planRollback(history, config.app, options);
          if ('refused' in plan) return { accepted: false, status: 409, reason: plan.refused };
          rollback = { ...plan, kind: 'hot' };
          logRollback(log, rollback, history.deploys.serving);
        }
        if (action === 'phased-restart' || options?.kind === 'phased')
          log.warn('phased restart needs cluster mode (-w N): doing a hot restart instead');
        // hotRestart begins its history record synchronously: take the id before.
        const restartId = (history.records.at(-1)?.id ?? 0) + 1;
        void hotRestart(Date.now(), rollback?.release.directory).catch((err: unknown) => {
          log.fatal({ err }, 'hot restart failed unexpectedly');
          process.exit(1);
        });
        return {
          accepted: true,
          restart: restartId,
          ...(rollback === undefined
            ? {}
            : { detail: `hot restart onto ${describeRelease(rollback.release)}` }),
        };
      }
      case 'reload-worker-directory':
        return { accepted: true, detail: `single mode resolves ${config.directory} at every restart` };
      case 'reload-certs': {
        const reloaded = certs.reload(state);
        return 'refused' in reloaded
          ? { accepted: false, status: 409, reason: reloaded.refused }
          : { accepted: true, detail: 'certificates re-read' };
      }
      case 'workers+1':
      case 'workers-1':
        return {
          accepted: false,
          status: 409,
          reason: 'changing the worker count needs cluster mode (-w N)',
        };
    }
  };

  const stats = (): Stats => ({
    version: VERSION,
    mode: 'single',
    pid: process.pid,
    startedAt: ctx.startedAt,
    phase: ctx.restart.count,
    state: lifecycle.state,
    requests: server.requests,
    inFlight: server.inFlight,
    lifetime: lifetimeView(history, server.requests),
    directory,
    longLived: server.longLivedOpen(),
    workers: [],
    restarts: history.records,
    listeners: listenerViews(listeners),
    fdCount: fs.readdirSync('/proc/self/fd').length,
    memory: memoryView(),
    ...certs.statsField(),
    ...history.deploys.view(),
  });

  const fds = () => [
    {
      ...inspect(process.pid, 'single', {
        listeners: listeners.map((l) => l.fd),
        control: ctx.controlFds ?? [],
        locks: ctx.locks?.map((l) => l.fd) ?? [],
      }),
      history: history.fdCounts(),
    },
  ];

  installSignalHandlers(
    (action, signal) => {
      const answer = perform(action);
      if (!answer.accepted)
        log.warn({ signal, state: lifecycle.state }, `${signal} ignored: ${answer.reason}`);
    },
    log,
    { certs: certs.configured },
  );
  await ctx.onServing?.({ stats, perform, fds, reloadCerts: () => certs.reload(lifecycle.state) });
}

async function serveAll(server: AppServer, listeners: readonly Listener[]): Promise<void> {
  for (const l of listeners) await server.serve(`${l.spec.uri}#${l.slot}`, native.dup(l.fd));
}
