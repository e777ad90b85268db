// The nserve command line. One process image plays one role, picked once here: boot check, worker (both
// told by their environment: restart/handoff.ts), master (-w N > 0) or single.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Command, CommanderError, Option } from 'commander';
import { compatPorts, listenWaitMs, loadApp, resolveAppFile } from '../app.js';
import { type CliOptions, type Config, describeConfig, formatConfig, loadConfig } from '../config.js';
import { openControlPlane } from '../control/server.js';
import { errorMessage, NserveError, usageError } from '../errors.js';
import { LEAK_POLICIES } from '../fds.js';
import {
  createLogger,
  LOG_LEVELS,
  onStdioReopened,
  redirectStdio,
  reopenRedirectedStdio,
  stdioRedirected,
} from '../logger.js';
import * as native from '../native.js';
import { execBack } from '../restart/exec.js';
import { BootGuard } from '../restart/guard.js';
import {
  type BootCheckWhat,
  CONSUMED_ENV,
  decodeHandoff,
  HANDOFF_ENV,
  readBootCheckEnv,
  readWorkerEnv,
} from '../restart/handoff.js';
import type { RunContext } from '../run-context.js';
import { runSingle } from '../single.js';
import { type Controller, RestartHistory } from '../status.js';
import { VERSION } from '../version.js';
import { fdsViaControl, registerCtlCommand } from './ctl.js';
import { registerFdsCommand } from './fds.js';

const EXIT_USAGE = 2;
/** The boot timeout before the config (and its own timeout) is read. */
const DEFAULT_BOOT_TIMEOUT_MS = 60_000;

function fail(message: string): never {
  process.stderr.write(`nserve: error: ${message}\n`);
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
  if (config.environment !== undefined) process.env.NODE_ENV = config.environment;

  // Every role points its own stdout/stderr at the files (a worker reopens them on SIGHUP).
  redirectStdio({ stdout: config.redirectStdout, stderr: config.redirectStderr });

  if (identity !== undefined) {
    const { runWorker } = await import('../cluster/worker.js');
    if (stdioRedirected()) {
      // The master passes SIGHUP on: reopen our own descriptors 1 and 2 (worker.ts ignores SIGHUP otherwise).
      const hupLog = createLogger({
        level: config.logLevel,
        base: { role: 'worker', worker: identity.index },
      });
      process.on('SIGHUP', () => reopenRedirectedStdio(hupLog));
    }
    return runWorker({ config, env, identity });
  }
  const log = createLogger({
    level: config.logLevel,
    base: { role: config.workers > 0 ? 'master' : 'single' },
  });
  const history = RestartHistory.fromHandoff(handoff?.history);
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
    onServing: async (controller) => {
      if (config.workers > 0) onStdioReopened(() => signalWorkers(controller, 'SIGHUP'));
      await control.serve(controller);
    },
  };
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
  return runSingle(ctx);
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
  return cmd
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
    .option('--directory <dir>', 'working directory of the app, re-resolved at every restart (default: cwd)')
    .option('--pidfile <file>', 'write the PID here')
    .option('-e, --environment <name>', 'sets NODE_ENV for the app')
    .option('--shutdown-timeout <s>', 'seconds to let in-flight requests finish on stop/restart (default 30)')
    .option('--worker-timeout <s>', 'seconds a worker may go without checking in (default 60)')
    .option('--worker-boot-timeout <s>', 'seconds new code may take to boot (default 60)')
    .option('--hook-timeout <s>', 'seconds each hook may run (default 30)')
    .option('--drain-grace <s>', 'idle seconds before a draining keep-alive connection is closed (default 1)')
    .option(
      '--shutdown-delay <s>',
      'on stop, keep serving this long with the health path answering 503 (Kubernetes endpoints; default 0)',
    )
    .option(
      '--long-lived-grace <s>',
      'seconds WebSockets and event streams get to close at a drain before nserve ends them (default 2)',
    )
    .option('--backlog <n>', 'listen backlog (default 1024)')
    .addOption(new Option('--log-level <level>', `log level (default info)`).choices(LOG_LEVELS))
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
    .option('--state <file>', 'state file for nserve ctl: PID, control URL and token (mode 0600)')
    .option('--redirect-stdout <file>', 'append stdout to FILE; SIGHUP reopens it')
    .option('--redirect-stderr <file>', 'append stderr to FILE; SIGHUP reopens it')
    .option('-C, --config <file>', 'config file (default: nserve.config.{mjs,js,cjs,json} in cwd)')
    .option('--access-log', 'log one line per request (method, path, status, duration)')
    .option(
      '--boot-check',
      'single mode: boot the new code in a separate process before a hot restart execs (default: exec at once, come back to the previous release if it fails)',
    )
    .option(
      '--health-path <path>',
      'answer this path from nserve itself: 200 while serving, 503 while draining',
    );
}

export function buildProgram(): Command {
  const program = new Command();
  program
    .name('nserve')
    .description('Production application server and process manager for Node.js')
    .version(VERSION, '-v, --version')
    .showHelpAfterError('(run "nserve help" for usage)')
    .exitOverride()
    .configureOutput({
      // commander's own errors are one line ("error: unknown option '--x'"); keep them so, named.
      writeErr: (s) => process.stderr.write(s.startsWith('error:') ? `nserve: ${s}` : s),
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
      .requiredOption('--print', 'print the configuration')
      .option('--json', 'print JSON'),
  ).action(async (app: string | undefined, opts: CliOptions & { json?: boolean }) => {
    const config = await loadConfig(app, opts, launchCwd());
    process.stdout.write(
      opts.json === true ? `${JSON.stringify(describeConfig(config), null, 2)}\n` : formatConfig(config),
    );
  });
  registerCtlCommand(program);
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
    process.stderr.write(
      `nserve: fatal: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
    );
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
