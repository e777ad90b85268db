// The nserve command line. One process image plays one role, picked once here: boot check, worker (both
// told by their environment: restart/handoff.ts), master (-w N > 0) or single.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Command, CommanderError, Option } from 'commander';
import { compatPorts, listenWaitMs, loadApp, resolveAppFile } from '../app.js';
import { type CliOptions, type Config, describeConfig, formatConfig, loadConfig } from '../config.js';
import { openControlPlane } from '../control/server.js';
import { applyEnvFile, describeEnvChange } from '../env-file.js';
import { errorMessage, NserveError, usageError } from '../errors.js';
import { LEAK_POLICIES, noteStartupFds } from '../fds.js';
import {
  createLogger,
  LOG_FORMATS,
  LOG_LEVELS,
  onStdioReopened,
  redirectStdio,
  reopenRedirectedStdio,
  setDefaultLogFormat,
  stdioRedirected,
} from '../logger.js';
import { MetricsPlane } from '../metrics/plane.js';
import { REQUESTS } from '../metrics/requests.js';
import * as native from '../native.js';
import { execBack } from '../restart/exec.js';
import { BootGuard } from '../restart/guard.js';
import {
  type BootCheckWhat,
  CONSUMED_ENV,
  decodeHandoff,
  HANDOFF_ENV,
  type Handoff,
  readBootCheckEnv,
  readWorkerEnv,
} from '../restart/handoff.js';
import type { RunContext } from '../run-context.js';
import { runSingle } from '../single.js';
import { type Controller, RestartHistory } from '../status.js';
import { tagOutput } from '../tag-output.js';
import { setProcessTitle } from '../title.js';
import { VERSION } from '../version.js';
import { fdsViaControl, registerCtlCommand } from './ctl.js';
import { registerFdsCommand } from './fds.js';

const EXIT_USAGE = 2;
/** The boot timeout before the config (and its own timeout) is read. */
const DEFAULT_BOOT_TIMEOUT_MS = 60_000;

/** nserve's own last words go to descriptor 2 directly: never through a --tag-output wrapper. */
function writeStderr(text: string): void {
  try {
    fs.writeSync(2, text);
  } catch {
    // stderr closed: nothing to tell
  }
}

function fail(message: string): never {
  writeStderr(`nserve: error: ${message}\n`);
  process.exit(EXIT_USAGE);
}

function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

/**
 * The directory the command was given in, as the user named it: a shell's $PWD when it is the same
 * directory (so `cd /var/www/current && nserve start app.mjs` keeps following the `current` symlink
 * across restarts), else the resolved cwd.
 */
function launchCwd(): string {
  const cwd = process.cwd();
  const pwd = process.env.PWD;
  try {
    if (pwd !== undefined && path.isAbsolute(pwd) && fs.realpathSync(pwd) === cwd) return pwd;
  } catch {
    // PWD names something that is gone
  }
  return cwd;
}

async function start(appArg: string | undefined, opts: CliOptions): Promise<void> {
  // Before anything is opened: what is open now came from the launcher (or is Node's own).
  noteStartupFds();
  const env = { ...process.env };
  for (const k of CONSUMED_ENV) delete process.env[k];
  const bootCheck = readBootCheckEnv(env);
  if (bootCheck !== undefined) return bootCheckChild(() => loadConfig(appArg, opts, launchCwd()), bootCheck);
  // A hot restart's exec: read what the previous image handed over. One written by an nserve this one
  // cannot read (a release that ships another nserve version) is handed back, unread, to its writer.
  const decoded = decodeHandoff(env);
  if (decoded.kind === 'foreign') {
    if (decoded.back === undefined)
      throw new NserveError('ERR_NSERVE_INHERIT', `cannot adopt the previous image: ${decoded.reason}`);
    process.stderr.write(
      `nserve: the previous image's hand-off cannot be read (${decoded.reason}): execing back\n`,
    );
    execBack(decoded.back, decoded.reason, env);
  }
  const handoff = decoded.kind === 'ok' ? decoded.handoff : undefined;
  const cwd = launchCwd();
  const identity = readWorkerEnv(env);
  const rejected = env[HANDOFF_ENV.rejected];
  // An optimistic single-mode hot restart: until the new code serves, a failure execs back.
  const guard =
    handoff?.optimistic === true && rejected === undefined && identity === undefined
      ? new BootGuard(handoff, env, DEFAULT_BOOT_TIMEOUT_MS)
      : undefined;
  // Back from a new image that could not take over: read the config this image read before.
  const options =
    rejected !== undefined && handoff?.configFile != null ? { ...opts, config: handoff.configFile } : opts;
  let config: Config;
  try {
    config = await loadConfig(appArg, options, cwd);
  } catch (err) {
    guard?.fail(errorMessage(err));
    if (identity !== undefined) {
      const { reportEarlyBootError } = await import('../cluster/worker.js');
      reportEarlyBootError(identity.channelFd, errorMessage(err));
    }
    throw err;
  }
  guard?.rearm(config.workerBootTimeoutMs);
  setDefaultLogFormat(config.logFormat);
  if (config.environment !== undefined) process.env.NODE_ENV = config.environment;

  // Every role points its own stdout/stderr at the files (a worker reopens them on SIGHUP).
  redirectStdio({ stdout: config.redirectStdout, stderr: config.redirectStderr });

  if (identity !== undefined) {
    const { runWorker } = await import('../cluster/worker.js');
    if (config.envFile !== undefined) {
      // From the release this worker's generation serves (re-resolved by the master for each restart).
      const change = applyEnvFile(config.envFile, identity.directory ?? fs.realpathSync(config.directory));
      const said = describeEnvChange(change);
      if (said !== undefined)
        createLogger({ level: config.logLevel, base: { role: 'worker', worker: identity.index } }).info(
          { envFile: change.file, changed: change.changed, removed: change.removed },
          said,
        );
    }
    if (stdioRedirected()) {
      // The master passes SIGHUP on: reopen our own descriptors 1 and 2 (worker.ts ignores SIGHUP otherwise).
      const hupLog = createLogger({
        level: config.logLevel,
        base: { role: 'worker', worker: identity.index },
      });
      process.on('SIGHUP', () => reopenRedirectedStdio(hupLog));
    }
    setProcessTitle({ role: 'worker', index: identity.index, generation: identity.generation });
    if (config.tagOutput) tagAppOutput({ role: 'worker', worker: identity.index });
    return runWorker({ config, env, identity });
  }
  const log = createLogger({
    level: config.logLevel,
    base: { role: config.workers > 0 ? 'master' : 'single' },
  });
  if (config.envFile !== undefined) {
    // Read again by every image (a hot restart's exec) from the release it serves.
    const change = applyEnvFile(config.envFile, releaseDirectory(config, handoff, env));
    const said = describeEnvChange(change);
    if (said !== undefined)
      log.info({ envFile: change.file, changed: change.changed, removed: change.removed }, said);
  }
  const history = RestartHistory.fromHandoff(handoff?.history, handoff?.totals);
  if (rejected !== undefined && handoff !== undefined) {
    // The new image could not boot, or read our hand-off, and execed back: this is the old code again.
    handoff.restart.count -= 1;
    log.error(
      { code: 'ERR_NSERVE_BOOT_CHECK', error: rejected },
      `hot restart abandoned, old code keeps serving: ${rejected}`,
    );
    history.finish(history.current(), 'failed', rejected);
  }
  const startedAt = handoff?.startedAt ?? new Date().toISOString();
  // The control server (master or single only, never a worker) binds now, so a bad address fails first.
  const control = openControlPlane(config, log, startedAt);
  // Metrics (docs/metrics.md): the dedicated listener binds now too, and answers from the start.
  const metrics = config.metrics ? MetricsPlane.open(config, log, history, handoff?.metrics) : undefined;
  REQUESTS.on = config.metrics && config.workers === 0;
  const ctx: RunContext = {
    config,
    appArg,
    cliOptions: options,
    configFileResolved: config.configFile === undefined ? null : realpathOr(config.configFile),
    ...(guard === undefined ? {} : { guard }),
    log,
    restart: { count: handoff?.restart.count ?? 0, requestedAt: handoff?.restart.requestedAt },
    handoff,
    rejected: handoff === undefined ? undefined : rejected,
    env,
    history,
    startedAt,
    launchCwd: cwd,
    ...(control.server === undefined ? {} : { controlFds: [control.server.fd] }),
    ...(metrics === undefined ? {} : { metrics }),
    onServing: async (controller) => {
      if (config.workers > 0) onStdioReopened(() => signalWorkers(controller, 'SIGHUP'));
      if (metrics !== undefined) {
        controller.metrics = () => metrics.render();
        if (metrics.url !== undefined) log.info({ url: metrics.url }, 'metrics listener serving');
      }
      await control.serve(controller);
    },
  };
  setProcessTitle(
    config.workers > 0
      ? { role: 'master', app: config.app, generation: handoff?.generation ?? 0 }
      : { role: 'single', app: config.app },
  );
  if (!native.available) {
    // Single mode serves without the addon (macOS, Windows): everything else needs it.
    if (config.workers > 0)
      throw usageError(
        'ERR_NSERVE_NO_ADDON',
        `cluster mode (-w ${config.workers}) needs nserve's native addon (Linux), which is unavailable: ${native.unavailableReason ?? 'unknown'}`,
      );
    const { runPortable } = await import('../portable.js');
    return runPortable(ctx);
  }
  if (config.workers > 0) {
    const { runMaster } = await import('../cluster/master.js');
    return runMaster(ctx);
  }
  if (config.tagOutput) tagAppOutput({ role: 'single' });
  return runSingle(ctx);
}

/**
 * --tag-output in the process that runs the app. Its own loggers at info, whatever --log-level says: the
 * app's output is not nserve's to filter.
 */
function tagAppOutput(base: Record<string, unknown>): void {
  tagOutput({
    stdout: createLogger({ level: 'info', base }),
    stderr: createLogger({ level: 'info', base, fd: 2 }),
  });
}

/** The release an image serves: the resolved --directory (after an exec back: the one it served before). */
function releaseDirectory(config: Config, handoff: Handoff | undefined, env: NodeJS.ProcessEnv): string {
  if (handoff !== undefined && env[HANDOFF_ENV.rejected] !== undefined) return handoff.directory;
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

async function bootCheckChild(load: () => Promise<Config>, what: BootCheckWhat): Promise<void> {
  const send = (msg: object): Promise<void> =>
    new Promise((resolve) => {
      if (process.send === undefined) resolve();
      else process.send(msg, () => resolve());
    });
  try {
    // A config file that no longer loads must be reported like an app that does not.
    const config = await load();
    if (config.environment !== undefined) process.env.NODE_ENV = config.environment;
    const dir = fs.realpathSync(config.directory);
    process.chdir(dir);
    // The new code boots with the new release's env file (a missing one fails the check).
    if (config.envFile !== undefined) applyEnvFile(config.envFile, dir);
    if (what === 'config') {
      // Cluster hot restart: the new master must be able to start; the new workers' boot is checked
      // by booting them while the old ones serve.
      await send({ ok: true, file: resolveAppFile(config.app, dir) });
      process.exit(0);
    }
    const configured = config.binds.flatMap((b) => (b.kind === 'tcp' ? [b.port] : []));
    // The server holds the ports: an app that listens itself must be captured here too, not bound.
    const loaded = await loadApp(config.app, dir, {
      ports: compatPorts(configured, process.env),
      listenWaitMs: listenWaitMs(config),
    });
    if (config.readyProbe !== undefined) {
      const { AppServer } = await import('../server.js');
      const { readyProbe } = await import('../probe.js');
      const server = AppServer.forApp(loaded, config, createLogger({ level: 'silent', base: {} }));
      const failed = await readyProbe(server, config.readyProbe, config.readyProbeTimeoutMs);
      if (failed !== undefined) throw new NserveError('ERR_NSERVE_READY_PROBE', failed);
    }
    await send({ ok: true, file: loaded.file });
  } catch (err) {
    await send({ ok: false, error: errorMessage(err) });
    process.exit(1);
  }
  // The app may have opened connections or timers at load: don't wait for them.
  process.exit(0);
}

const APP_HELP =
  'app module: default-exports (req, res) or { fetch(request) }, or listens itself; resolved against --directory';

/** The options of `start`, shared with `config --print` so both read the same configuration. */
function withStartOptions(cmd: Command): Command {
  return (
    cmd
      .option(
        '-b, --bind <uri>',
        'bind URI, repeatable: tcp://HOST:PORT, tcp://[::1]:PORT, unix:///path?mode=0660',
        collect,
      )
      .option('-p, --port <n>', 'shorthand for --bind tcp://0.0.0.0:N (default bind tcp://0.0.0.0:3000)')
      .option('-w, --workers <n>', 'worker processes; 0 = single mode (default 0)')
      .option('--slots <n>', 'reuseport slot sockets per TCP bind in cluster mode (default: workers)')
      .option(
        '--balance <mode>',
        'spread connections over slots: kernel (default) or ip-hash (a client address sticks to one worker)',
      )
      .option(
        '--directory <dir>',
        'working directory of the app, re-resolved at every restart (default: cwd)',
      )
      .option('--pidfile <file>', 'write the PID here')
      .option('-e, --environment <name>', 'sets NODE_ENV for the app')
      .option(
        '--shutdown-timeout <s>',
        'seconds to let in-flight requests finish on stop/restart (default 30)',
      )
      .option('--worker-timeout <s>', 'seconds a worker may go without checking in (default 60)')
      .option('--worker-boot-timeout <s>', 'seconds new code may take to boot (default 60)')
      .option(
        '--worker-max-memory <size>',
        'replace a worker (surge-first, no request failing) whose RSS stays above SIZE, e.g. 512MB',
      )
      .option('--hook-timeout <s>', 'seconds each hook may run (default 30)')
      .option(
        '--drain-grace <s>',
        'idle seconds before a draining keep-alive connection is closed (default 1)',
      )
      .option(
        '--shutdown-delay <s>',
        'on stop, keep serving this long with the health path answering 503 (Kubernetes endpoints; default 0)',
      )
      .option(
        '--long-lived-grace <s>',
        'seconds WebSockets and event streams get to close at a drain before nserve ends them (default 2)',
      )
      .option(
        '--keep-alive-timeout <s>',
        "idle seconds a keep-alive connection stays open; behind a load balancer, longer than the balancer's idle timeout (default 5)",
      )
      .option('--headers-timeout <s>', 'seconds a client may take to send the request headers (default 60)')
      .option(
        '--request-timeout <s>',
        'seconds a client may take to send a whole request; 0 = no limit (default 300)',
      )
      .option('--backlog <n>', 'listen backlog (default 1024)')
      .addOption(new Option('--log-level <level>', `log level (default info)`).choices(LOG_LEVELS))
      .addOption(
        new Option(
          '--log-format <format>',
          'json, pretty (one line per event) or logfmt (default: pretty on a terminal, json otherwise)',
        ).choices(LOG_FORMATS),
      )
      .addOption(
        new Option(
          '--leak-policy <policy>',
          'descriptors that would leak into a hot restart: close (default), warn, refuse',
        ).choices(LEAK_POLICIES),
      )
      .option(
        '--control-url <url>',
        'control server: unix:///path (mode 0600), tcp://HOST:PORT (needs --control-token) or auto (next to --state)',
      )
      .option('--control-token <token>', 'token control requests must carry (auto generates one)')
      .option(
        '--metrics-url <url>',
        'read-only Prometheus listener tcp://HOST:PORT answering GET /metrics, kept open across hot restarts',
      )
      .option('--state <file>', 'state file for nserve ctl: PID, control URL and token (mode 0600)')
      .option('--redirect-stdout <file>', 'append stdout to FILE; SIGHUP reopens it')
      .option('--redirect-stderr <file>', 'append stderr to FILE; SIGHUP reopens it')
      // Not --env-file: Node 20 itself checks any "--env-file FILE" in argv, even after the script name, and
      // exits 9 when FILE is not in the cwd (every worker and restarted image is started with our argv).
      .option(
        '--dotenv <file>',
        'dotenv file (relative to --directory), read again at every restart, for the workers and the new image (config envFile)',
      )
      .option(
        '-C, --config <file>',
        'config file (default: $NSERVE_CONFIG, else nserve.config.{mjs,js,cjs,json} in cwd)',
      )
      .option(
        '--tag-output',
        "the app's stdout/stderr lines become log events naming the worker that wrote them (in the log format)",
      )
      .option('--access-log', 'log one line per request (method, path, status, duration)')
      .option(
        '--boot-check',
        'single mode: boot the new code in a separate process before a hot restart execs (default: exec at once, come back to the previous release if it fails)',
      )
      .option(
        '--ready-probe <path>',
        'every new worker (and new code in single mode) must answer GET PATH with a 2xx, over a private socket, before it gets traffic',
      )
      .option('--ready-probe-timeout <s>', 'seconds the ready probe may take (default 5)')
      .option(
        '--health-path <path>',
        'answer this path from nserve itself: 200 while serving, 503 while draining',
      )
  );
}

export function buildProgram(): Command {
  const program = new Command();
  program
    .name('nserve')
    .description('Production application server and process manager for Node.js')
    .version(VERSION, '-v, --version')
    .exitOverride()
    .configureOutput({
      // commander's own errors are one line ("error: unknown option '--x'"); keep them so, named, and
      // without a usage hint on a line of its own (every usage error is one line).
      writeErr: (s) => process.stderr.write(s.startsWith('error:') ? `nserve: ${s.trimEnd()}\n` : s),
    });
  withStartOptions(
    program
      .command('start')
      .description('serve an HTTP app module (single mode, or cluster mode with -w N)')
      .argument('[app]', APP_HELP),
  ).action(async (app: string | undefined, opts: CliOptions) => start(app, opts));
  withStartOptions(
    program
      .command('config')
      .description(
        'show the merged configuration (defaults, config file, flags, environment) and where each value came from',
      )
      .argument('[app]', APP_HELP)
      .option('--print', 'print the configuration (what `nserve config` does anyway)')
      .option('--json', 'print JSON'),
  ).action(async (app: string | undefined, opts: CliOptions & { json?: boolean }) => {
    const config = await loadConfig(app, opts, launchCwd());
    process.stdout.write(
      opts.json === true ? `${JSON.stringify(describeConfig(config), null, 2)}\n` : formatConfig(config),
    );
  });
  registerCtlCommand(program);
  // `nserve restart` and friends are ctl commands: say so instead of "unknown command".
  for (const name of ['restart', 'phased-restart', 'stop', 'halt', 'status', 'stats', 'workers']) {
    program
      .command(name, { hidden: true })
      .argument('[args...]')
      .allowUnknownOption()
      .allowExcessArguments()
      .action(() => {
        throw usageError(
          'ERR_NSERVE_USAGE',
          `${name} is a ctl command: nserve ctl ${name} -S STATE (or -P PIDFILE; nserve ctl --help)`,
        );
      });
  }
  registerFdsCommand(program, fdsViaControl);
  return program;
}

export async function main(argv: string[]): Promise<void> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      process.exit(err.exitCode === 0 ? 0 : EXIT_USAGE);
    }
    if (err instanceof NserveError && err.usage) fail(err.message);
    writeStderr(`nserve: fatal: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  }
}

void main(process.argv);

function realpathOr(file: string): string {
  try {
    return fs.realpathSync(file);
  } catch {
    return file;
  }
}
