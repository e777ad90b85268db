// The nserve command line. One process image plays one role, picked once here: boot check, worker (both
// told by their environment: restart/handoff.ts), master (-w N > 0) or single. This module is the
// commander program and its options; the `start` role dispatch is cli/start.ts, the boot-check child
// cli/boot-check.ts.
import * as fs from 'node:fs';
import { Command, CommanderError, Option } from 'commander';
import { type CliOptions, describeConfig, formatConfig, loadConfig } from '../config.js';
import { NserveError, usageError } from '../errors.js';
import { LEAK_POLICIES } from '../fds.js';
import { LOG_FORMATS, LOG_LEVELS } from '../logger.js';
import { VERSION } from '../version.js';
import { fdsViaControl, registerCtlCommand } from './ctl.js';
import { registerFdsCommand } from './fds.js';
import { launchCwd, start } from './start.js';

const EXIT_USAGE = 2;

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
        '--canary <duration>',
        "phased restart: the first new worker serves alone for DURATION (e.g. 3s); a worse 5xx rate than the old workers' stops the rollout and brings the previous release back",
      )
      .option(
        '--phase-concurrency <n>',
        'phased restart: replace N workers at a time, each replacement accepting before its old worker drains (default 1)',
      )
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
