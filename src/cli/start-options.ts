// The options of `nserve start` (and `nserve config`), as data: cli/program.ts makes commander options of
// them, and `parseStartArgs` reads a plain `start` command line without loading commander at all.
//
// Why: every nserve process (single server, master, each worker, boot-check child) is an `nserve start`
// command line, and commander costs each ~2 MB and several ms of start-up. `parseStartArgs` accepts only
// what it reads exactly as commander would (`--opt value`, `--opt=value`, `-o value`, `-ovalue`, flags,
// one app argument); for anything else (help, version, an unknown option, a bad choice, a missing value,
// a second argument) it returns undefined and the caller hands the command line to commander, which
// answers it as it always has. test/unit/start-options.test.ts compares both readings.
//
// `--` ends nserve's command line: what follows is the app's (`nserve start next -w 2 -- start`, PM2's
// convention), given to it as process.argv[2…]. Both readings split there first (splitAppArgs): commander
// drops a `--` from its operands, so it could not tell `start app x` (an error) from `start app -- x`.
import type { CliOptions } from '../config/index.js';
import { LOG_FORMATS, LOG_LEVELS } from '../log/logger.js';
import { RESTART_OVERFLOWS } from '../memory/fit.js';
import { LEAK_POLICIES } from '../os/descriptors.js';

export interface StartOption {
  /** commander's flags: `-b, --bind <uri>`, `--tag-output`. */
  flags: string;
  description: string;
  /** Repeatable: the values are collected into an array. */
  repeatable?: true;
  choices?: readonly string[];
}

export const START_OPTIONS: readonly StartOption[] = [
  {
    flags: '-b, --bind <uri>',
    description: 'bind URI, repeatable: tcp://HOST:PORT, tcp://[::1]:PORT, unix:///path?mode=0660',
    repeatable: true,
  },
  {
    flags: '-p, --port <n>',
    description: 'shorthand for --bind tcp://0.0.0.0:N (default bind tcp://0.0.0.0:3000)',
  },
  { flags: '-w, --workers <n>', description: 'worker processes; 0 = single mode (default 0)' },
  {
    flags: '--slots <n>',
    description: 'reuseport slot sockets per TCP bind in cluster mode (default: workers)',
  },
  {
    flags: '--balance <mode>',
    description:
      'spread connections over slots: kernel (default) or ip-hash (a client address sticks to one worker)',
  },
  {
    flags: '--directory <dir>',
    description: 'working directory of the app, re-resolved at every restart (default: cwd)',
  },
  { flags: '--pidfile <file>', description: 'write the PID here' },
  { flags: '-e, --environment <name>', description: 'sets NODE_ENV for the app' },
  {
    flags: '--shutdown-timeout <s>',
    description: 'seconds to let in-flight requests finish on stop/restart (default 30)',
  },
  { flags: '--worker-timeout <s>', description: 'seconds a worker may go without checking in (default 60)' },
  { flags: '--worker-boot-timeout <s>', description: 'seconds new code may take to boot (default 60)' },
  {
    flags: '--worker-max-memory <size>',
    description: 'replace a worker (surge-first, no request failing) whose RSS stays above SIZE, e.g. 512MB',
  },
  { flags: '--hook-timeout <s>', description: 'seconds each hook may run (default 30)' },
  {
    flags: '--drain-grace <s>',
    description: 'idle seconds before a draining keep-alive connection is closed (default 1)',
  },
  {
    flags: '--shutdown-delay <s>',
    description:
      'on stop, keep serving this long with the health path answering 503 (Kubernetes endpoints; default 0)',
  },
  {
    flags: '--switch-timeout <s>',
    description:
      'seconds a drain waits for long-polls (socket.io polling, markLongPoll): then a cluster hot restart switches without them, elsewhere they end (default 1)',
  },
  {
    flags: '--long-lived-grace <s>',
    description:
      'seconds WebSockets and event streams get to close at a drain before nserve ends them (default 2)',
  },
  {
    flags: '--keep-alive-timeout <s>',
    description:
      "idle seconds a keep-alive connection stays open; behind a load balancer, longer than the balancer's idle timeout (default 5)",
  },
  {
    flags: '--headers-timeout <s>',
    description: 'seconds a client may take to send the request headers (default 60)',
  },
  {
    flags: '--request-timeout <s>',
    description: 'seconds a client may take to send a whole request; 0 = no limit (default 300)',
  },
  { flags: '--backlog <n>', description: 'listen backlog (default 1024)' },
  { flags: '--log-level <level>', description: 'log level (default info)', choices: LOG_LEVELS },
  {
    flags: '--log-format <format>',
    description:
      'json, pretty (one line per event) or logfmt (default: pretty on a terminal, json otherwise)',
    choices: LOG_FORMATS,
  },
  {
    flags: '--leak-policy <policy>',
    description: 'descriptors that would leak into a hot restart: close (default), warn, refuse',
    choices: LEAK_POLICIES,
  },
  {
    flags: '--restart-overflow <how>',
    description:
      'a cluster hot restart that does not fit in the memory limit: staged (default), phased or refuse',
    choices: RESTART_OVERFLOWS,
  },
  {
    flags: '--control-url <url>',
    description:
      'control server: unix:///path (mode 0600), tcp://HOST:PORT (needs --control-token) or auto (next to --state)',
  },
  { flags: '--control-token <token>', description: 'token control requests must carry (auto generates one)' },
  {
    flags: '--metrics-url <url>',
    description:
      'read-only Prometheus listener tcp://HOST:PORT answering GET /metrics, kept open across hot restarts',
  },
  {
    flags: '--state <file>',
    description: 'state file for nserve ctl: PID, control URL and token (mode 0600)',
  },
  { flags: '--redirect-stdout <file>', description: 'append stdout to FILE; SIGHUP reopens it' },
  { flags: '--redirect-stderr <file>', description: 'append stderr to FILE; SIGHUP reopens it' },
  // Not --env-file: Node 20 itself checks any "--env-file FILE" in argv, even after the script name, and
  // exits 9 when FILE is not in the cwd (every worker and restarted image is started with our argv).
  {
    flags: '--dotenv <file>',
    description:
      'dotenv file (relative to --directory), read again at every restart, for the workers and the new image (config envFile)',
  },
  {
    flags: '-C, --config <file>',
    description: 'config file (default: $NSERVE_CONFIG, else nserve.config.{mjs,js,cjs,json} in cwd)',
  },
  {
    flags: '--tag-output',
    description:
      "the app's stdout/stderr lines become log events naming the worker that wrote them (in the log format)",
  },
  { flags: '--access-log', description: 'log one line per request (method, path, status, duration)' },
  {
    flags: '--boot-check',
    description:
      'single mode: boot the new code in a separate process before a hot restart execs (default: exec at once, come back to the previous release if it fails)',
  },
  {
    flags: '--ready-probe <path>',
    description:
      'every new worker (and new code in single mode) must answer GET PATH with a 2xx, over a private socket, before it gets traffic',
  },
  { flags: '--ready-probe-timeout <s>', description: 'seconds the ready probe may take (default 5)' },
  {
    flags: '--canary <duration>',
    description:
      "phased restart: the first new worker serves alone for DURATION (e.g. 3s); a worse 5xx rate than the old workers' stops the rollout and brings the previous release back",
  },
  {
    flags: '--phase-concurrency <n>',
    description:
      'phased restart: replace N workers at a time, each replacement accepting before its old worker drains (default 1)',
  },
  {
    flags: '--health-path <path>',
    description: 'answer this path from nserve itself: 200 while serving, 503 while draining',
  },
];

interface ParsedFlags {
  short: string | undefined;
  long: string;
  /** The option's key in CliOptions, as commander names it (`--tag-output` → `tagOutput`). */
  key: string;
  takesValue: boolean;
}

function parseFlags(flags: string): ParsedFlags {
  const m = /^(?:-(\w), )?--([\w-]+)( <\w+>)?$/.exec(flags);
  if (m === null) throw new Error(`unexpected option flags: ${flags}`);
  const long = m[2] as string;
  return {
    short: m[1],
    long,
    key: long.replace(/-(\w)/g, (_, c: string) => c.toUpperCase()),
    takesValue: m[3] !== undefined,
  };
}

const BY_NAME = new Map<string, StartOption & ParsedFlags>();
for (const o of START_OPTIONS) {
  const p = { ...o, ...parseFlags(o.flags) };
  BY_NAME.set(`--${p.long}`, p);
  if (p.short !== undefined) BY_NAME.set(`-${p.short}`, p);
}

export interface StartArgs {
  app: string | undefined;
  opts: CliOptions;
}

/**
 * nserve's part of a `start` command line and the app's: everything after the first `--` (undefined
 * without one; `[]` for a `--` with nothing after it, which gives the app no arguments even when the
 * config file has `args`). A `--` is never an option's value here: `--control-token=--` is.
 */
export function splitAppArgs(args: readonly string[]): { own: string[]; app: string[] | undefined } {
  const at = args.indexOf('--');
  return at === -1 ? { own: [...args], app: undefined } : { own: args.slice(0, at), app: args.slice(at + 1) };
}

/**
 * The app and options of `nserve start ARGS` as commander would read them, or undefined when commander
 * must read them itself (help, errors, anything unusual). `args` is what follows `start`.
 */
export function parseStartArgs(all: readonly string[]): StartArgs | undefined {
  const { own: args, app: appArgs } = splitAppArgs(all);
  const opts: Record<string, string | string[] | boolean> = {};
  if (appArgs !== undefined) opts.args = appArgs;
  let app: string | undefined;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] as string;
    if (!arg.startsWith('-') || arg === '-') {
      if (app !== undefined) return undefined; // a second argument: commander's error
      app = arg;
      continue;
    }
    let name = arg;
    let value: string | undefined;
    if (arg.startsWith('--')) {
      const eq = arg.indexOf('=');
      if (eq !== -1) {
        name = arg.slice(0, eq);
        value = arg.slice(eq + 1);
      }
    } else if (arg.length > 2) {
      name = arg.slice(0, 2);
      value = arg.slice(2);
    }
    const option = BY_NAME.get(name);
    if (option === undefined) return undefined; // --help, --version, a typo: commander answers
    if (!option.takesValue) {
      if (value !== undefined) return undefined;
      opts[option.key] = true;
      continue;
    }
    if (value === undefined) {
      value = args[++i];
      // Missing, or looks like an option: let commander decide what it means.
      if (value === undefined || value.startsWith('-')) return undefined;
    }
    if (option.choices !== undefined && !option.choices.includes(value)) return undefined;
    if (option.repeatable === true) {
      const previous = opts[option.key];
      opts[option.key] = [...(Array.isArray(previous) ? previous : []), value];
    } else opts[option.key] = value;
  }
  return { app, opts: opts as CliOptions };
}
