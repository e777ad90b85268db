// Single mode: one process that holds the listening sockets and serves the app itself.
//
// Lifecycle: booting → serving → (restarting → exec | serving) → stopping → exited.
// The listening descriptors are owned here for the life of the PID (across hot restarts); the HTTP
// servers accept on dups of them, so stopping accepting never closes a socket and never drops its queue.
import * as fs from 'node:fs';
import { compatPorts, listenWaitMs, loadApp, publishPorts, resolveAppFile } from './app.js';
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
import type { Config } from './config.js';
import { errorMessage } from './errors.js';
import {
  checkLeaks,
  formatLeakEnv,
  inspect,
  leakCandidates,
  reportInheritedLeaks,
  warnOnGrowth,
} from './fds.js';
import { runHooks } from './hooks.js';
import type { Logger } from './logger.js';
import * as native from './native.js';
import { removePidfile, writePidfile } from './pidfile.js';
import { bootCheck, execSelf, type RestartInfo } from './restart.js';
import { AppServer } from './server.js';
import { installSignalHandlers } from './signals.js';
import {
  type ControlAction,
  type ControlAnswer,
  type Controller,
  listenerViews,
  type RestartHistory,
  type Stats,
} from './status.js';
import { reapOrphansAsInit, startWatchdog } from './systemd.js';
import { VERSION } from './version.js';

type Phase = 'booting' | 'serving' | 'restarting' | 'stopping';

export interface RunContext {
  config: Config;
  log: Logger;
  restart: RestartInfo;
  history: RestartHistory;
  /** Where the command line was given (logical path): restarts read it again from there. */
  launchCwd: string;
  /** When this server (PID) first started, across hot restarts. */
  startedAt: string;
  env: NodeJS.ProcessEnv;
  /** Descriptors of the control server's listening socket (labelled `control` by `nserve fds`). */
  controlFds?: readonly number[];
  /** Called once the server serves, with what the control server needs. */
  onServing?: (controller: Controller) => void | Promise<void>;
}

/** Environment that carries the server's identity into the re-exec'd image. */
export function identityEnv(ctx: RunContext): Record<string, string> {
  return { NSERVE_HISTORY: ctx.history.toEnv(), NSERVE_STARTED_AT: ctx.startedAt };
}

export async function runSingle(ctx: RunContext): Promise<void> {
  const { config, log, history } = ctx;
  // A missing app is bad input: say so before anything is bound.
  const directory = fs.realpathSync(config.directory);
  resolveAppFile(config.app, directory);
  const { listeners, leftovers } = openListeners(config.binds, {
    slots: 1,
    reusePort: false,
    backlog: config.backlog,
    inherited: [...parseInheritEnv(ctx.env.NSERVE_INHERIT), ...readSocketActivation(ctx.env)],
  });
  logActivated(listeners, log);
  let phase: Phase = 'booting';
  process.chdir(directory);
  publishPorts(tcpPorts(listeners));
  let app: Awaited<ReturnType<typeof loadApp>>;
  try {
    app = await loadApp(config.app, directory, {
      ports: compatPorts(tcpPorts(listeners), process.env),
      listenWaitMs: listenWaitMs(config),
    });
  } catch (err) {
    // Leave no socket file behind for an app that cannot start.
    closeListeners(listeners, { unlink: true });
    throw err;
  }
  const server = AppServer.forApp(app, config, log);
  await serveAll(server, listeners);
  // Binds removed from the config since the last image: close them only now that the new binds serve.
  closeLeftovers(leftovers);
  if (config.pidfile !== undefined) writePidfile(config.pidfile);
  phase = 'serving';
  reportInheritedLeaks(ctx.env.NSERVE_LEAKED, log);
  startWatchdog(ctx.env, log);
  reapOrphansAsInit(log);
  const restarted = history.current();
  if (restarted !== undefined) restarted.fds = fs.readdirSync('/proc/self/fd').length;
  history.finish(restarted, 'ok');
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
      ...(since === undefined ? {} : { restartMs: since }),
    },
    ctx.restart.count === 0 ? 'nserve booted' : 'nserve booted after hot restart',
  );
  native.notify(`READY=1\nSTATUS=single: serving, ${ctx.restart.count} hot restarts`);

  let stopRequested = false;
  const stop = async (reason: string, timeoutMs: number): Promise<void> => {
    phase = 'stopping';
    native.notify('STOPPING=1');
    log.info({ reason, inFlight: server.inFlight }, 'graceful stop: draining');
    server.stopAccepting();
    const { forced } = await server.drain(timeoutMs);
    if (forced > 0) log.warn({ forced }, `shutdown timeout reached: closed ${forced} open connection(s)`);
    closeListeners(listeners, { unlink: true });
    if (config.pidfile !== undefined) removePidfile(config.pidfile);
    log.info({ requests: server.requests }, 'stopped');
    process.exit(0);
  };

  const hotRestart = async (requestedAt: number): Promise<void> => {
    phase = 'restarting';
    const record = history.begin('hot');
    native.notify(`RELOADING=1\nMONOTONIC_USEC=${process.hrtime.bigint() / 1000n}`);
    log.info({ directory: config.directory }, 'hot restart: checking that the new code boots');
    const check = await bootCheck(config.workerBootTimeoutMs, log, 'app', ctx.launchCwd);
    if (stopRequested) return stop('stop requested during restart', config.shutdownTimeoutMs);
    if (!check.ok) {
      history.finish(record, 'failed', check.error);
      log.error(
        { code: 'ERR_NSERVE_BOOT_CHECK', error: check.error },
        `hot restart abandoned, old code keeps serving: ${check.error}`,
      );
      phase = 'serving';
      native.notify(`READY=1\nSTATUS=single: hot restart failed: ${check.error}`);
      return;
    }
    log.info({ app: check.file, bootMs: check.ms }, 'hot restart: new code boots; draining');
    server.stopAccepting();
    const { forced } = await server.drain(config.shutdownTimeoutMs);
    if (forced > 0)
      log.warn({ forced }, `hot restart: closed ${forced} connection(s) still open at the shutdown timeout`);
    const keep = new Set(listeners.map((l) => l.fd));
    const candidates = leakCandidates(keep);
    await runHooks('onRestart', config.hooks.onRestart, {}, config.hookTimeoutMs, log);
    if (stopRequested) return stop('stop requested during restart', config.shutdownTimeoutMs);
    const leaks = checkLeaks(candidates, keep, config.leakPolicy, log);
    const resume = async (): Promise<void> => {
      server.resume();
      await serveAll(server, listeners);
      phase = 'serving';
      native.notify('READY=1');
    };
    if (leaks.refuse) {
      const error = `descriptors would leak into the restarted process: ${leaks.leaks.map((l) => `${l.fd} (${l.target})`).join(', ')}`;
      history.finish(record, 'failed', error);
      log.error(
        { code: 'ERR_NSERVE_FD_LEAK' },
        `hot restart refused (leakPolicy refuse), old code keeps serving: ${error}`,
      );
      return resume();
    }
    try {
      execSelf({
        keepFds: listeners.map((l) => l.fd),
        env: {
          NSERVE_INHERIT: formatInheritEnv(listeners),
          NSERVE_LEAKED: config.leakPolicy === 'warn' ? formatLeakEnv(leaks.leaks) : '',
          ...identityEnv(ctx),
        },
        restart: { count: ctx.restart.count, requestedAt },
        log,
        cwd: ctx.launchCwd,
      });
    } catch (err) {
      history.finish(record, 'failed', errorMessage(err));
      log.error({ code: 'ERR_NSERVE_EXEC', err }, `hot restart: exec failed, resuming: ${errorMessage(err)}`);
      await resume();
    }
  };

  const perform = (action: ControlAction): ControlAnswer => {
    switch (action) {
      case 'stop':
      case 'halt':
        if (phase === 'stopping') return { accepted: false, status: 409, reason: 'already stopping' };
        if (phase === 'restarting') {
          stopRequested = true;
          log.info('stop requested during restart: stopping once the current step ends');
          return { accepted: true };
        }
        void stop(action, action === 'halt' ? 0 : config.shutdownTimeoutMs);
        return { accepted: true };
      case 'restart':
      case 'phased-restart': {
        if (action === 'phased-restart')
          log.warn('phased restart needs cluster mode (-w N): doing a hot restart instead');
        if (phase !== 'serving')
          return {
            accepted: false,
            status: 409,
            reason: `a restart is already in progress (or stopping): ${phase}`,
          };
        // hotRestart begins its history record synchronously: take the id before.
        const restartId = (history.records.at(-1)?.id ?? 0) + 1;
        void hotRestart(Date.now()).catch((err: unknown) => {
          log.fatal({ err }, 'hot restart failed unexpectedly');
          process.exit(1);
        });
        return { accepted: true, restart: restartId };
      }
      case 'reload-worker-directory':
        return { accepted: true, detail: `single mode resolves ${config.directory} at every restart` };
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
    state: phase,
    requests: server.requests,
    inFlight: server.inFlight,
    workers: [],
    restarts: history.records,
    listeners: listenerViews(listeners),
    fdCount: fs.readdirSync('/proc/self/fd').length,
  });

  const fds = () => [
    {
      ...inspect(process.pid, 'single', {
        listeners: listeners.map((l) => l.fd),
        control: ctx.controlFds ?? [],
      }),
      history: history.fdCounts(),
    },
  ];

  installSignalHandlers((action, signal) => {
    const answer = perform(action);
    if (!answer.accepted) log.warn({ signal, phase }, `${signal} ignored: ${answer.reason}`);
  }, log);
  await ctx.onServing?.({ stats, perform, fds });
}

async function serveAll(server: AppServer, listeners: readonly Listener[]): Promise<void> {
  for (const l of listeners) await server.serve(`${l.spec.uri}#${l.slot}`, native.dup(l.fd));
}
