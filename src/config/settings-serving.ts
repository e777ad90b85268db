// The settings table, part one: where and how nserve serves (binds, processes, files, logs, control).
// settings.ts joins the parts; its header says what is fed from them.
import { formatControlUrl } from '../control/api.js';
import type { BindSpec } from '../listen/binder.js';
import { LOG_FORMATS, LOG_LEVELS } from '../log/logger.js';
import type { MetricsAddress } from './derive.js';
import { oneOf, orNull, type Setting } from './setting-kinds.js';
import type { Config } from './types.js';
import { bool, healthPath, integer, SETTING_ENV, str } from './values.js';

export const SERVING_SETTINGS = [
  {
    key: 'app',
    field: 'app',
  },
  {
    key: 'bind',
    flags: '-b, --bind <uri>',
    repeatable: true,
    help: 'bind URI, repeatable: tcp://HOST:PORT, tcp://[::1]:PORT, unix:///path?mode=0660',
    doc: {
      default: '`tcp://0.0.0.0:3000`',
      meaning:
        'repeatable: `tcp://HOST:PORT`, `tcp://[::1]:PORT`, `unix:///path?mode=0660`, `ssl://HOST:PORT?cert=…&key=…` ([TLS](#tls-https-and-http2))',
    },
    field: 'binds',
    show: (binds: readonly BindSpec[]) => binds.map((b) => b.uri),
  },
  {
    key: 'port',
    flags: '-p, --port <n>',
    env: SETTING_ENV.port,
    help: 'shorthand for --bind tcp://0.0.0.0:N (default bind tcp://0.0.0.0:3000)',
    doc: { default: '`$PORT`', meaning: 'shorthand for `--bind tcp://0.0.0.0:N`' },
  },
  {
    key: 'workers',
    flags: '-w, --workers <n>',
    env: SETTING_ENV.workers,
    help: 'worker processes; 0 = single mode (default 0)',
    doc: { default: '`$WEB_CONCURRENCY` or `0`', meaning: 'worker processes; `0` is single mode' },
    field: 'workers',
    parse: (key, v) => integer(key, v, 0, 256, 0),
  },
  {
    key: 'slots',
    flags: '--slots <n>',
    help: 'reuseport slot sockets per TCP bind in cluster mode (default: workers)',
    doc: { default: 'workers', meaning: 'reuseport slot sockets per TCP bind (cluster mode)' },
    field: 'slots',
  },
  {
    key: 'balance',
    flags: '--balance <mode>',
    help: 'spread connections over slots: kernel (default) or ip-hash (a client address sticks to one worker)',
    doc: {
      default: '`kernel`',
      meaning:
        'how new connections spread over the slots: `kernel`, or `ip-hash` to keep each client address on one worker (socket.io; [docs](docs/balancing.md))',
    },
    field: 'balance',
  },
  {
    key: 'directory',
    flags: '--directory <dir>',
    help: 'working directory of the app, re-resolved at every restart (default: cwd)',
    doc: {
      default: 'cwd',
      meaning: "the app's working directory, re-resolved at every restart (symlinked releases)",
    },
    field: 'directory',
  },
  {
    key: 'pidfile',
    flags: '--pidfile <file>',
    help: 'write the PID here',
    doc: {
      default: '',
      meaning:
        "written atomically, removed at stop; `FILE.lock` beside it is locked for the server's life (a second server on the same file is refused; without the addon this is a check, not a lock); an existing file that is not a pidfile (or not a regular file, or the same file as `--state` or a redirect) is refused, never overwritten ([docs](docs/operating.md#the-pidfile-and-the-state-file))",
    },
    field: 'pidfile',
    show: orNull,
  },
  {
    key: 'environment',
    flags: '-e, --environment <name>',
    help: 'sets NODE_ENV for the app',
    doc: { default: '', meaning: 'sets `NODE_ENV`' },
    field: 'environment',
    parse: str,
    show: orNull,
  },
  {
    key: 'backlog',
    flags: '--backlog <n>',
    help: 'listen backlog (default 1024)',
    doc: { default: '`1024`', meaning: 'listen backlog' },
    field: 'backlog',
    parse: (key, v) => integer(key, v, 1, 65535, 1024),
  },
  {
    key: 'logLevel',
    flags: '--log-level <level>',
    choices: LOG_LEVELS,
    help: 'log level (default info)',
    doc: { default: '`info`', meaning: '`fatal` … `trace`, `silent`' },
    field: 'logLevel',
    parse: oneOf(LOG_LEVELS, 'info'),
  },
  {
    key: 'logFormat',
    flags: '--log-format <format>',
    choices: LOG_FORMATS,
    help: 'json, pretty (one line per event) or logfmt (default: pretty on a terminal, json otherwise)',
    doc: {
      default: 'terminal: `pretty`, else `json`',
      meaning: '`json`, `pretty` (one line per event) or `logfmt` ([docs](docs/operating.md#log-formats))',
    },
    field: 'logFormat',
    parse: oneOf(LOG_FORMATS, undefined),
    show: (v: string | undefined) => v ?? 'auto',
  },
  {
    key: 'tagOutput',
    flags: '--tag-output',
    help: "the app's stdout/stderr lines become log events naming the worker that wrote them (in the log format)",
    doc: {
      default: 'off',
      meaning: "the app's stdout/stderr lines become log events naming the worker that wrote them",
    },
    field: 'tagOutput',
    parse: bool,
  },
  {
    key: 'accessLog',
    flags: '--access-log',
    help: 'log one line per request (method, path, status, duration)',
    doc: { default: 'off', meaning: 'one log line per request: method, path, status, duration' },
    field: 'accessLog',
    parse: bool,
  },
  {
    key: 'healthPath',
    flags: '--health-path <path>',
    help: 'answer this path from nserve itself: 200 while serving, 503 while draining',
    doc: { default: '', meaning: 'answered by nserve itself: 200 while serving, 503 while draining' },
    field: 'healthPath',
    parse: (_key, v) => healthPath(v),
    show: orNull,
  },
  {
    key: 'controlUrl',
    flags: '--control-url <url>',
    help: 'control server: unix:///path (mode 0600), tcp://HOST:PORT (needs --control-token) or auto (next to --state)',
    doc: {
      default: '',
      meaning: 'control server: `unix:///path`, `tcp://HOST:PORT` (needs a token) or `auto`',
    },
    field: 'control',
    show: (c: Config['control']) => (c === undefined ? null : formatControlUrl(c.address)),
  },
  {
    key: 'controlToken',
    flags: '--control-token <token>',
    help: 'token control requests must carry (auto generates one)',
    doc: { default: '', meaning: 'token for the control server' },
    field: 'control',
    show: (c: Config['control']) => (c?.token === undefined ? null : '(redacted)'),
  },
  {
    key: 'metricsUrl',
    flags: '--metrics-url <url>',
    help: 'read-only Prometheus listener tcp://HOST:PORT answering GET /metrics, kept open across hot restarts',
    doc: {
      default: '',
      meaning:
        'read-only Prometheus listener answering `GET /metrics`, kept open across hot restarts ([docs](docs/metrics.md))',
    },
    field: 'metricsUrl',
    show: (m: MetricsAddress | undefined) => m?.uri ?? null,
  },
  {
    key: 'state',
    flags: '--state <file>',
    help: 'state file for nserve ctl: PID, control URL and token (mode 0600)',
    doc: {
      default: '',
      meaning:
        'state file for `nserve ctl` (PID, control URL, token; mode 0600); locked (`FILE.lock`) and an existing file that is not an nserve state file refused, as for `--pidfile`',
    },
    field: 'stateFile',
    show: orNull,
  },
  {
    key: 'redirectStdout',
    flags: '--redirect-stdout <file>',
    help: 'append stdout to FILE; SIGHUP reopens it',
    doc: { default: '', meaning: 'append stdout to FILE; `SIGHUP` reopens it' },
    field: 'redirectStdout',
    show: orNull,
  },
  {
    key: 'redirectStderr',
    flags: '--redirect-stderr <file>',
    help: 'append stderr to FILE; SIGHUP reopens it',
    doc: { default: '', meaning: 'append stderr to FILE; `SIGHUP` reopens it' },
    field: 'redirectStderr',
    show: orNull,
  },
  // Not --env-file: Node 20 itself checks any "--env-file FILE" in argv, even after the script name, and
  // exits 9 when FILE is not in the cwd (every worker and restarted image is started with our argv).
  {
    key: 'envFile',
    flags: '--dotenv <file>',
    help: 'dotenv file (relative to --directory), read again at every restart, for the workers and the new image (config envFile)',
    doc: {
      default: '',
      meaning:
        'dotenv file, relative to `--directory`, read again at every restart ([docs](docs/operating.md#a-new-releases-environment---dotenv-file))',
    },
    field: 'envFile',
    show: orNull,
  },
  {
    key: 'config',
    flags: '-C, --config <file>',
    cliOnly: true,
    help: 'config file (default: $NSERVE_CONFIG, else nserve.config.{mjs,js,cjs,json} in cwd)',
    doc: {
      default: '`$NSERVE_CONFIG`, else `nserve.config.{mjs,js,cjs,json}` in the cwd',
      meaning: 'config file: the settings in the config key column, plus hooks',
    },
  },
  {
    key: 'args',
    doc: {
      option: '`-- ARGS…`',
      default: 'none',
      meaning: "the app's arguments: its `process.argv` is `[node, APP, …ARGS]` (a bare `--` gives none)",
    },
    field: 'args',
  },
] as const satisfies readonly Setting[];
