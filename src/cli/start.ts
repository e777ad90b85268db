// `nserve start`: the one place a process image learns its role and runs it: boot-check child (cli/boot-check.ts),
// worker (both told by their environment: restart/handoff.ts), master (-w N > 0) or single; a hot
// restart's exec reads the hand-off here first.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { type CliOptions, type Config, loadConfig } from '../config/index.js';
import type { ControlPlane } from '../control/plane.js';
import type { Controller } from '../control/status.js';
import { realpathOr } from '../deploy/release.js';
import { errorMessage, NserveError } from '../errors.js';
import type { RunContext } from '../launcher/run-context.js';
import { logEvent } from '../log/events.js';
import { createLogger, deferredLogger, type Logger, setDefaultLogFormat } from '../log/logger.js';
import { onStdioReopened, redirectStdio, reopenRedirectedStdio, stdioRedirected } from '../log/stdio.js';
import { REQUESTS } from '../metrics/requests.js';
import * as native from '../native/index.js';
import { noteStartupFds } from '../os/descriptors.js';
import { setProcessTitle } from '../os/title.js';
import type { BootGuard } from '../restart/guard.js';
import {
  CONSUMED_ENV,
  decodeHandoff,
  HANDOFF_ENV,
  type Handoff,
  PRELOAD_ENV,
  readBootCheckDirectory,
  readBootCheckEnv,
  readStandbyEnv,
  readWorkerEnv,
  type WorkerIdentity,
  withoutPreload,
} from '../restart/handoff.js';
import type { RestartHistory } from '../restart/history.js';

// Each role loads only what it runs (`await import`): a worker never loads the master, the control
// server, the metrics listener or the restart machinery, and none of them is loaded when not configured.
// Every module costs each process memory and start-up time (docs/benchmarks.md, issue 17).

/** The boot timeout before the config (and its own timeout) is read. */
const DEFAULT_BOOT_TIMEOUT_MS = 60_000;

/**
 * The directory the command was given in, as the user named it: a shell's $PWD when it is the same
 * directory (so `cd /var/www/current && nserve start app.mjs` keeps following the `current` symlink
 * across restarts), else the resolved cwd.
 */
/**
 * Node's own process.exit, taken when this module loads: before an optimistic hot restart's boot guard
 * or the app's load replace it with stubs (restart/guard.ts, app/index.ts). An uncaught exception long after
 * the guard was disarmed must exit, not exec back to the previous release through a stale stub.
 */
const NODE_EXIT = process.exit.bind(process);

export function launchCwd(): string {
  const cwd = process.cwd();
  const pwd = process.env.PWD;
  try {
    if (pwd !== undefined && path.isAbsolute(pwd) && fs.realpathSync(pwd) === cwd) return pwd;
  } catch {
    // PWD names something that is gone
  }
  return cwd;
}

export async function start(appArg: string | undefined, opts: CliOptions): Promise<void> {
  // Before anything is opened: what is open now came from the launcher (or is Node's own).
  noteStartupFds();
  const env = takeLaunchEnv();
  // A standby worker (--standby) waits here, Node and the worker path loaded, until the master wakes it.
  const standbyFd = readStandbyEnv(env);
  if (standbyFd !== undefined)
    Object.assign(env, await (await import('../cluster/standby-wake.js')).awaitWake(standbyFd));
  const bootCheck = readBootCheckEnv(env);
  if (bootCheck !== undefined) {
    const { bootCheckChild } = await import('./boot-check.js');
    return bootCheckChild(
      () => loadConfig(appArg, opts, launchCwd()),
      bootCheck,
      readBootCheckDirectory(env),
    );
  }
  const handoff = await readHandoff(env);
  const cwd = launchCwd();
  const identity = readWorkerEnv(env);
  const rejected = env[HANDOFF_ENV.rejected];
  // An optimistic single-mode hot restart: until the new code serves, a failure execs back.
  const guard: BootGuard | undefined =
    handoff?.optimistic === true && rejected === undefined && identity === undefined
      ? new (await import('../restart/guard.js')).BootGuard(handoff, env, DEFAULT_BOOT_TIMEOUT_MS)
      : undefined;
  // Back from a new image that could not take over: read the config this image read before.
  const options =
    rejected !== undefined && handoff?.configFile != null ? { ...opts, config: handoff.configFile } : opts;
  const config = await loadRoleConfig(appArg, options, cwd, identity, guard);
  guard?.rearm(config.workerBootTimeoutMs);
  setDefaultLogFormat(config.logFormat);
  if (config.environment !== undefined) process.env.NODE_ENV = config.environment;

  // Every role points its own stdout/stderr at the files (a worker reopens them on SIGHUP).
  redirectStdio({ stdout: config.redirectStdout, stderr: config.redirectStderr });

  if (identity !== undefined) return startWorker(config, env, identity);
  return startServer({ appArg, options, config, env, handoff, rejected, guard, cwd });
}

/**
 * The environment as launched, for this process to read; what only nserve reads is taken out of
 * process.env, which the app sees.
 */
function takeLaunchEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const k of CONSUMED_ENV) delete process.env[k];
  // A hot restart's image: the recorder preloaded for Node's start-up is not for the app or its children.
  if (native.signalPreload !== undefined) {
    const rest = withoutPreload(process.env[PRELOAD_ENV], native.signalPreload);
    if (rest === undefined) delete process.env[PRELOAD_ENV];
    else process.env[PRELOAD_ENV] = rest;
  }
  return env;
}

/**
 * A hot restart's exec: what the previous image handed over. One written by an nserve this one cannot
 * read (a release that ships another nserve version) is handed back, unread, to its writer.
 */
async function readHandoff(env: NodeJS.ProcessEnv): Promise<Handoff | undefined> {
  const decoded = decodeHandoff(env);
  if (decoded.kind === 'foreign') {
    if (decoded.back === undefined)
      throw new NserveError('ERR_NSERVE_INHERIT', `cannot adopt the previous image: ${decoded.reason}`);
    process.stderr.write(
      `nserve: the previous image's hand-off cannot be read (${decoded.reason}): execing back\n`,
    );
    const { execBack } = await import('../restart/exec.js');
    execBack(decoded.back, decoded.reason, env);
  }
  return decoded.kind === 'ok' ? decoded.handoff : undefined;
}

/** The config; a failure is told to the boot guard (exec back) or a worker's master before it is thrown. */
async function loadRoleConfig(
  appArg: string | undefined,
  options: CliOptions,
  cwd: string,
  identity: WorkerIdentity | undefined,
  guard: BootGuard | undefined,
): Promise<Config> {
  try {
    // A worker loads the directory its master names (identity): --directory may point nowhere now.
    return await loadConfig(appArg, options, cwd, process.env, {
      directoryMayBeGone: identity?.directory !== undefined,
    });
  } catch (err) {
    guard?.fail(errorMessage(err));
    if (identity !== undefined) {
      const { reportEarlyBootError } = await import('../cluster/worker.js');
      reportEarlyBootError(identity.channelFd, errorMessage(err));
    }
    throw err;
  }
}

/** A worker: its release's dotenv file, SIGHUP for redirected output, its title, then the worker loop. */
async function startWorker(config: Config, env: NodeJS.ProcessEnv, identity: WorkerIdentity): Promise<void> {
  const { runWorker } = await import('../cluster/worker.js');
  // Made only when a worker has something to say here: each logger is a stream on stdout.
  const log = (): Logger =>
    createLogger({ level: config.logLevel, base: { role: 'worker', worker: identity.index } });
  if (config.envFile !== undefined) {
    // From the release this worker's generation serves (re-resolved by the master for each restart).
    await applyDotenv(config.envFile, identity.directory ?? fs.realpathSync(config.directory), log);
  }
  if (stdioRedirected()) {
    // The master passes SIGHUP on: reopen our own descriptors 1 and 2 (cluster/worker.ts ignores SIGHUP otherwise).
    // Deferred: pino loads beside the app, not before it (log/logger.ts).
    const hupLog = deferredLogger({
      level: config.logLevel,
      base: { role: 'worker', worker: identity.index },
    }).log;
    process.on('SIGHUP', () => reopenRedirectedStdio(hupLog));
  }
  setProcessTitle({ role: 'worker', index: identity.index, generation: identity.generation });
  if (config.tagOutput) await tagAppOutput({ role: 'worker', worker: identity.index });
  return runWorker({ config, env, identity });
}

/** Read `file` (relative to `directory`) into process.env, and say what changed. */
async function applyDotenv(file: string, directory: string, log: () => Logger): Promise<void> {
  const { applyEnvFile, describeEnvChange } = await import('../config/env-file.js');
  const change = applyEnvFile(file, directory);
  const said = describeEnvChange(change);
  if (said !== undefined)
    logEvent(
      log(),
      'env-file.applied',
      { envFile: change.file, changed: change.changed, removed: change.removed },
      said,
    );
}

interface ServerStart {
  appArg: string | undefined;
  options: CliOptions;
  config: Config;
  env: NodeJS.ProcessEnv;
  handoff: Handoff | undefined;
  /** Why the new image this one execed into handed back (HANDOFF_ENV.rejected), if it did. */
  rejected: string | undefined;
  guard: BootGuard | undefined;
  cwd: string;
}

/** A master or a single server: its history, control plane and metrics, then the runner of its mode. */
async function startServer(s: ServerStart): Promise<void> {
  const { config, handoff } = s;
  const log = createLogger({
    level: config.logLevel,
    base: { role: config.workers > 0 ? 'master' : 'single' },
  });
  if (config.envFile !== undefined) {
    // Read again by every image (a hot restart's exec) from the release it serves.
    await applyDotenv(config.envFile, releaseDirectory(config, handoff, s.env), () => log);
  }
  const history = await restartHistory(handoff, s.rejected, log);
  const startedAt = handoff?.startedAt ?? new Date().toISOString();
  // Without the addon (portable mode): what needs it is refused now, before anything binds.
  if (!native.available) (await import('../modes/portable.js')).refuseWithoutAddon(config);
  // The control server (master or single only, never a worker) binds now, so a bad address fails first.
  // So are the locks beside --pidfile and --state: a second server is refused before it binds anything.
  const control = await openControlPlane(config, log, startedAt, handoff?.locks);
  // Metrics (docs/metrics.md): the dedicated listener binds now too, and answers from the start.
  const metrics = config.metrics
    ? (await import('../metrics/metrics-plane.js')).MetricsPlane.open(config, log, history, handoff?.metrics)
    : undefined;
  REQUESTS.on = config.metrics && config.workers === 0;
  const ctx: RunContext = {
    config,
    appArg: s.appArg,
    cliOptions: s.options,
    configFileResolved: config.configFile === undefined ? null : realpathOr(config.configFile),
    ...(s.guard === undefined ? {} : { guard: s.guard }),
    log,
    restart: { count: handoff?.restart.count ?? 0, requestedAt: handoff?.restart.requestedAt },
    handoff,
    rejected: handoff === undefined ? undefined : s.rejected,
    env: s.env,
    history,
    startedAt,
    launchCwd: s.cwd,
    ...(control.server === undefined ? {} : { controlFds: [control.server.fd] }),
    locks: control.locks,
    ...(metrics === undefined ? {} : { metrics }),
    onServing: async (controller) => {
      if (config.workers > 0) onStdioReopened(() => signalWorkers(controller, 'SIGHUP'));
      if (metrics !== undefined) {
        controller.metrics = () => metrics.render();
        if (metrics.url !== undefined)
          logEvent(log, 'metrics.listener.serving', { url: metrics.url }, 'metrics listener serving');
      }
      await control.serve(controller);
    },
  };
  return runMode(ctx, log);
}

/**
 * The restart history handed over (empty at first boot). Back from a new image that could not boot, or
 * read the hand-off, and execed back: this is the old code again, and the restart is recorded as failed.
 */
async function restartHistory(
  handoff: Handoff | undefined,
  rejected: string | undefined,
  log: Logger,
): Promise<RestartHistory> {
  const { RestartHistory } = await import('../restart/history.js');
  const history = RestartHistory.fromHandoff(
    handoff?.history,
    handoff?.totals,
    handoff?.releases,
    handoff?.directory,
  );
  if (rejected !== undefined && handoff !== undefined) {
    handoff.restart.count -= 1;
    logEvent(
      log,
      'restart.hot.abandoned',
      { code: 'ERR_NSERVE_BOOT_CHECK', error: rejected },
      `hot restart abandoned, old code keeps serving: ${rejected}`,
    );
    history.finish(history.current(), 'failed', rejected);
  }
  return history;
}

/** The runner of the configured mode: cluster master (-w N), single, or portable (no addon). */
async function runMode(ctx: RunContext, log: Logger): Promise<void> {
  const { config, handoff } = ctx;
  setProcessTitle(
    config.workers > 0
      ? { role: 'master', app: config.app, generation: handoff?.generation ?? 0 }
      : { role: 'single', app: config.app },
  );
  if (config.workers > 0) {
    const { runMaster } = await import('../cluster/master.js');
    return runMaster(ctx);
  }
  if (config.tagOutput) await tagAppOutput({ role: 'single' });
  stopOnUncaught(log);
  if (!native.available) {
    // Single mode serves without the addon (macOS, Windows): refuseWithoutAddon refused the rest.
    const { runPortable } = await import('../modes/portable.js');
    return runPortable(ctx);
  }
  const { runSingle } = await import('../modes/single.js');
  return runSingle(ctx);
}

/**
 * Single and portable mode: an uncaught exception (the app's, mostly) is logged as one event, its message
 * escaped like every field nserve logs (Node's own report would write the app's text raw to stderr, a
 * forged line or a terminal escape included), and the server exits 1 as Node would. There is no one to
 * replace the process, and an app in an unknown state must not go on serving. (An optimistic hot
 * restart's boot guard, installed before this, takes the new code back to the old one instead.)
 */
function stopOnUncaught(log: Logger): void {
  const exit = NODE_EXIT;
  process.on('uncaughtException', (err) => {
    try {
      logEvent(
        log,
        'process.uncaught-exception',
        { err, code: 'ERR_NSERVE_UNCAUGHT' },
        `uncaught exception: the server stops: ${errorMessage(err)}`,
      );
    } catch {
      // logging failed (a full disk, a closed stdout): the exit status still says it
    }
    exit(1);
  });
}

/**
 * --tag-output in the process that runs the app. Its own loggers at info, whatever --log-level says: the
 * app's output is not nserve's to filter.
 */
async function tagAppOutput(base: Record<string, unknown>): Promise<void> {
  const { tagOutput } = await import('../log/tag-output.js');
  tagOutput({
    stdout: createLogger({ level: 'info', base }),
    stderr: createLogger({ level: 'info', base, fd: 2 }),
  });
}

/**
 * The control server, state file and pidfile; none of their modules is loaded for a server that has none.
 */
async function openControlPlane(
  config: Config,
  log: Logger,
  startedAt: string,
  handedLocks: Handoff['locks'],
): Promise<ControlPlane> {
  if (config.control === undefined && config.stateFile === undefined && config.pidfile === undefined)
    return { server: undefined, locks: [], serve: async () => {} };
  const plane = await import('../control/plane.js');
  return plane.openControlPlane(config, log, startedAt, handedLocks);
}

/** The release an image serves: the resolved --directory (after an exec back: the one it served before). */
function releaseDirectory(config: Config, handoff: Handoff | undefined, env: NodeJS.ProcessEnv): string {
  if (handoff !== undefined && env[HANDOFF_ENV.rejected] !== undefined) return handoff.directory;
  if (handoff?.pinned !== undefined) return handoff.pinned; // a rollback
  try {
    return fs.realpathSync(config.directory);
  } catch {
    return config.directory; // the start reports it
  }
}

/** A master passes SIGHUP on to its workers: each reopens its own copy of the redirected files. */
function signalWorkers(controller: Controller, signal: NodeJS.Signals): void {
  for (const w of controller.stats().workers) {
    try {
      process.kill(w.pid, signal);
    } catch {
      // exited meanwhile
    }
  }
}
