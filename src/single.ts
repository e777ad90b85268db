// Single mode: one process that holds the listening sockets and serves the app itself.
//
// Lifecycle: booting → serving → (restarting → exec | serving) → stopping → exited.
// The listening descriptors are owned here for the life of the PID (across hot restarts); the HTTP
// servers accept on dups of them, so stopping accepting never closes a socket and never drops its queue.
import * as fs from 'node:fs';
import { loadApp } from './app.js';
import {
  closeLeftovers,
  closeListeners,
  formatAddress,
  formatInheritEnv,
  type Listener,
  openListeners,
  parseInheritEnv,
} from './binder.js';
import type { Config } from './config.js';
import { errorMessage } from './errors.js';
import { runHooks } from './hooks.js';
import type { Logger } from './logger.js';
import * as native from './native.js';
import { removePidfile, writePidfile } from './pidfile.js';
import { bootCheck, execSelf, type RestartInfo } from './restart.js';
import { AppServer } from './server.js';
import { type Action, installSignalHandlers } from './signals.js';
import { VERSION } from './version.js';

type Phase = 'booting' | 'serving' | 'restarting' | 'stopping';

export interface RunContext {
  config: Config;
  log: Logger;
  restart: RestartInfo;
  env: NodeJS.ProcessEnv;
}

export async function runSingle(ctx: RunContext): Promise<void> {
  const { config, log } = ctx;
  const { listeners, leftovers } = openListeners(config.binds, {
    slots: 1,
    reusePort: false,
    backlog: config.backlog,
    inherited: parseInheritEnv(ctx.env.NSERVE_INHERIT),
  });
  let phase: Phase = 'booting';
  const directory = fs.realpathSync(config.directory);
  process.chdir(directory);
  const app = await loadApp(config.app, directory);
  const server = new AppServer(app.listener, {
    log,
    backlog: config.backlog,
    drainGraceMs: config.drainGraceMs,
  });
  await serveAll(server, listeners);
  // Binds removed from the config since the last image: close them only now that the new binds serve.
  closeLeftovers(leftovers);
  if (config.pidfile !== undefined) writePidfile(config.pidfile);
  phase = 'serving';
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
  native.notify('READY=1');

  let stopRequested = false;
  const stop = async (signal: string): Promise<void> => {
    phase = 'stopping';
    native.notify('STOPPING=1');
    log.info({ signal, inFlight: server.inFlight }, 'graceful stop: draining');
    server.stopAccepting();
    const { forced } = await server.drain(config.shutdownTimeoutMs);
    if (forced > 0) log.warn({ forced }, `shutdown timeout reached: closed ${forced} open connection(s)`);
    closeListeners(listeners, { unlink: true });
    if (config.pidfile !== undefined) removePidfile(config.pidfile);
    log.info({ requests: server.requests }, 'stopped');
    process.exit(0);
  };

  const hotRestart = async (requestedAt: number): Promise<void> => {
    phase = 'restarting';
    native.notify(`RELOADING=1\nMONOTONIC_USEC=${monotonicUsec()}`);
    log.info({ directory: config.directory }, 'hot restart: checking that the new code boots');
    const check = await bootCheck(config.workerBootTimeoutMs, log);
    if (stopRequested) return stop('SIGTERM');
    if (!check.ok) {
      log.error(
        { code: 'ERR_NSERVE_BOOT_CHECK', error: check.error },
        `hot restart abandoned, old code keeps serving: ${check.error}`,
      );
      phase = 'serving';
      native.notify('READY=1');
      return;
    }
    log.info({ app: check.file, bootMs: check.ms }, 'hot restart: new code boots; draining');
    server.stopAccepting();
    const { forced } = await server.drain(config.shutdownTimeoutMs);
    if (forced > 0)
      log.warn({ forced }, `hot restart: closed ${forced} connection(s) still open at the shutdown timeout`);
    await runHooks('onRestart', config.hooks.onRestart, {}, config.hookTimeoutMs, log);
    if (stopRequested) return stop('SIGTERM');
    try {
      execSelf({
        keepFds: listeners.map((l) => l.fd),
        env: { NSERVE_INHERIT: formatInheritEnv(listeners) },
        restart: { count: ctx.restart.count, requestedAt },
        log,
      });
    } catch (err) {
      log.error({ code: 'ERR_NSERVE_EXEC', err }, `hot restart: exec failed, resuming: ${errorMessage(err)}`);
      server.resume();
      await serveAll(server, listeners);
      phase = 'serving';
      native.notify('READY=1');
    }
  };

  installSignalHandlers((action: Action, signal) => {
    if (action === 'stop') {
      if (phase === 'restarting') {
        stopRequested = true;
        log.info({ signal }, 'stop requested during restart: stopping once the current step ends');
        return;
      }
      if (phase !== 'stopping') void stop(signal);
      return;
    }
    if (action === 'restart' || action === 'phased-restart') {
      if (action === 'phased-restart')
        log.warn('phased restart needs cluster mode (-w N): doing a hot restart instead');
      if (phase !== 'serving') {
        log.warn({ signal, phase }, 'restart already in progress (or stopping): signal ignored');
        return;
      }
      void hotRestart(Date.now()).catch((err: unknown) => {
        log.fatal({ err }, 'hot restart failed unexpectedly');
        process.exit(1);
      });
      return;
    }
    log.warn({ signal }, `${signal} changes the worker count, which needs cluster mode (-w N): ignored`);
  }, log);
}

async function serveAll(server: AppServer, listeners: readonly Listener[]): Promise<void> {
  for (const l of listeners) await server.serve(`${l.spec.uri}#${l.slot}`, native.dup(l.fd));
}

function monotonicUsec(): string {
  return String(process.hrtime.bigint() / 1000n);
}
