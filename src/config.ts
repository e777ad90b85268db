// CLI options + config file → one validated, frozen Config. Nothing downstream re-reads argv or env.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import type { LevelWithSilent } from 'pino';
import { BALANCES, type Balance, type BindSpec, parseBindUri } from './binder.js';
import { type ControlConfig, formatControlUrl, resolveControl } from './control/api.js';
import { errorMessage, usageError } from './errors.js';
import { LEAK_POLICIES, type LeakPolicy } from './fds.js';
import { LOG_FORMATS, LOG_LEVELS, type LogFormat } from './logger.js';
import { readStateFile } from './statefile.js';
import { checkTlsBinds } from './tls.js';

export interface HookContext {
  /** Which hook is running, e.g. 'onRestart'. */
  hook: HookName;
  /** Worker index, for worker hooks and beforeSpawn. */
  worker?: number;
  /** Worker generation (phase) for worker hooks. */
  phase?: number;
}
export type HookFn = (context: HookContext) => unknown;
export type HookName = 'onRestart' | 'onWorkerBoot' | 'onWorkerShutdown' | 'beforeSpawn' | 'onBooted';
export const HOOK_NAMES: readonly HookName[] = [
  'onRestart',
  'onWorkerBoot',
  'onWorkerShutdown',
  'beforeSpawn',
  'onBooted',
];

/** What a config file may export (all optional; CLI flags override it). Durations are in seconds. */
export interface UserConfig {
  app?: string;
  bind?: string | string[];
  port?: number;
  workers?: number;
  slots?: number;
  /** How new connections are spread over the slots of a TCP bind (docs/balancing.md). */
  balance?: Balance;
  directory?: string;
  pidfile?: string;
  environment?: string;
  shutdownTimeout?: number;
  workerTimeout?: number;
  workerBootTimeout?: number;
  hookTimeout?: number;
  drainGrace?: number;
  keepAliveTimeout?: number;
  headersTimeout?: number;
  requestTimeout?: number;
  /** Seconds long-lived connections (WebSocket, event streams) get to close at a drain (default 2). */
  longLivedGrace?: number;
  /** Seconds a stop keeps serving, with the health path answering 503, before it stops accepting. */
  shutdownDelay?: number;
  /** A worker whose RSS stays above this (bytes, or '512MB') for 3 check-ins is replaced, surge-first. */
  workerMaxMemory?: number | string;
  backlog?: number;
  logLevel?: LevelWithSilent;
  logFormat?: LogFormat;
  leakPolicy?: LeakPolicy;
  controlUrl?: string;
  controlToken?: string;
  /** A read-only Prometheus listener, `tcp://HOST:PORT` (docs/metrics.md). */
  metricsUrl?: string;
  state?: string;
  redirectStdout?: string;
  redirectStderr?: string;
  accessLog?: boolean;
  /**
   * Single mode: check that the new code boots in a separate process before a hot restart's exec (the
   * default execs at once and comes back to the previous release if the new one fails to boot).
   */
  bootCheck?: boolean;
  healthPath?: string;
  /** Each new worker (and new code in single mode) must answer GET of this path with a 2xx, over a private socket, before it gets traffic. */
  readyProbe?: string;
  /** Seconds the ready probe may take (default 5). */
  readyProbeTimeout?: number;
  envFile?: string;
  tagOutput?: boolean;
  onRestart?: HookFn | HookFn[];
  onWorkerBoot?: HookFn | HookFn[];
  onWorkerShutdown?: HookFn | HookFn[];
  beforeSpawn?: HookFn | HookFn[];
  onBooted?: HookFn | HookFn[];
}

/** Typed helper for config files: `export default defineConfig({ ... })`. */
export function defineConfig(config: UserConfig): UserConfig {
  return config;
}

export interface Config {
  app: string;
  binds: readonly BindSpec[];
  /** 0 = single mode. */
  workers: number;
  /** Reuseport slot sockets per TCP bind in cluster mode. */
  slots: number;
  /**
   * `kernel`: the kernel's own hash of each connection spreads it over the slots. `ip-hash`: a BPF program
   * on each TCP bind pins a client address to one slot (set on every TCP bind spec too, for the binder).
   */
  balance: Balance;
  /** Absolute, not resolved: a symlinked release directory is re-resolved at every (re)start. */
  directory: string;
  pidfile: string | undefined;
  environment: string | undefined;
  shutdownTimeoutMs: number;
  workerTimeoutMs: number;
  workerBootTimeoutMs: number;
  hookTimeoutMs: number;
  drainGraceMs: number;
  /**
   * HTTP timeouts of the app's connections (Node's http.Server options). Behind a load balancer the
   * keep-alive timeout must outlast the balancer's idle timeout (AWS ALB: 60 s), or the balancer reuses a
   * connection the server is closing and answers 502. undefined: not set (the app's own listen-compat
   * server setting, else Node's default: 5 s, 60 s, 300 s).
   */
  keepAliveTimeoutMs: number | undefined;
  headersTimeoutMs: number | undefined;
  requestTimeoutMs: number | undefined;
  longLivedGraceMs: number;
  shutdownDelayMs: number;
  /** Bytes; undefined: no limit. */
  workerMaxMemory: number | undefined;
  backlog: number;
  logLevel: LevelWithSilent;
  /** `--log-format`; undefined: pretty on a terminal, JSON otherwise. */
  logFormat: LogFormat | undefined;
  /** What to do with descriptors that would leak into a hot-restarted image. */
  leakPolicy: LeakPolicy;
  /** The control server (master or single only), if `--control-url` is set. */
  control: ControlConfig | undefined;
  /** `--metrics-url`: a read-only listener answering GET /metrics, kept across hot restarts. */
  metricsUrl: MetricsAddress | undefined;
  /** Requests are counted and /metrics answered: a metrics listener or a control server is configured. */
  metrics: boolean;
  /** `--state`: where `nserve ctl -S` finds the PID, control URL and token. */
  stateFile: string | undefined;
  /** `--redirect-stdout` / `--redirect-stderr`: appended to, reopened on SIGHUP. */
  redirectStdout: string | undefined;
  redirectStderr: string | undefined;
  /** One log line per request (method, path, status, duration). */
  accessLog: boolean;
  bootCheck: boolean;
  /** A path nserve answers itself (200 while serving, 503 while draining), for load balancers and k8s. */
  healthPath: string | undefined;
  readyProbe: string | undefined;
  readyProbeTimeoutMs: number;
  /** `--dotenv` (config envFile): dotenv file, relative to the (re-resolved) directory, read at every (re)start. */
  envFile: string | undefined;
  /** The app's stdout/stderr lines become log events naming the process (worker) that wrote them. */
  tagOutput: boolean;
  configFile: string | undefined;
  /** How `configFile` was found. */
  configSource: ConfigFileSource | undefined;
  /** Where each setting came from, for `nserve config --print`. */
  sources: Readonly<Record<string, Source>>;
  hooks: Readonly<Record<HookName, readonly HookFn[]>>;
}

/** The `start` command's flags as commander parsed them (strings, before validation). */
export interface CliOptions {
  bind?: string[];
  port?: string;
  workers?: string;
  slots?: string;
  balance?: string;
  directory?: string;
  pidfile?: string;
  environment?: string;
  shutdownTimeout?: string;
  workerTimeout?: string;
  workerBootTimeout?: string;
  hookTimeout?: string;
  drainGrace?: string;
  keepAliveTimeout?: string;
  headersTimeout?: string;
  requestTimeout?: string;
  longLivedGrace?: string;
  shutdownDelay?: string;
  workerMaxMemory?: string;
  backlog?: string;
  logLevel?: string;
  logFormat?: string;
  leakPolicy?: string;
  controlUrl?: string;
  controlToken?: string;
  metricsUrl?: string;
  state?: string;
  redirectStdout?: string;
  redirectStderr?: string;
  accessLog?: boolean;
  bootCheck?: boolean;
  healthPath?: string;
  readyProbe?: string;
  readyProbeTimeout?: string;
  /** `--dotenv` (config key envFile). */
  dotenv?: string;
  tagOutput?: boolean;
  config?: string;
}

const CONFIG_NAMES = ['nserve.config.mjs', 'nserve.config.js', 'nserve.config.cjs', 'nserve.config.json'];
/** The environment variable that names the config file (below -C, above the working directory). */
export const CONFIG_ENV = 'NSERVE_CONFIG';

/** How the config file was found: `-C FILE`, `$NSERVE_CONFIG`, or by name in the working directory. */
export type ConfigFileSource = 'flag' | 'env' | 'cwd';

export interface FoundConfigFile {
  file: string;
  source: ConfigFileSource;
}

export function findConfigFile(
  cwd: string,
  explicit: string | undefined,
  env: NodeJS.ProcessEnv = {},
): FoundConfigFile | undefined {
  const named: [string | undefined, ConfigFileSource, string][] = [
    [explicit, 'flag', '-C/--config'],
    [env[CONFIG_ENV] === '' ? undefined : env[CONFIG_ENV], 'env', `environment ${CONFIG_ENV}`],
  ];
  for (const [name, source, what] of named) {
    if (name === undefined) continue;
    const file = path.resolve(cwd, name);
    if (!fs.existsSync(file))
      throw usageError('ERR_NSERVE_CONFIG_FILE', `config file not found: ${file} (from ${what})`);
    return { file, source };
  }
  const file = CONFIG_NAMES.map((n) => path.join(cwd, n)).find((f) => fs.existsSync(f));
  return file === undefined ? undefined : { file, source: 'cwd' };
}

/** The config file in words, for the boot line and `config --print`. */
export function describeConfigSource(config: Pick<Config, 'configFile' | 'configSource'>): string {
  if (config.configFile === undefined) return 'none';
  const how =
    config.configSource === 'flag'
      ? 'from -C'
      : config.configSource === 'env'
        ? `from ${CONFIG_ENV}`
        : 'found in the working directory';
  return `${config.configFile} (${how})`;
}

export async function readConfigFile(file: string, fresh = false): Promise<UserConfig> {
  let value: unknown;
  try {
    if (file.endsWith('.json')) value = JSON.parse(fs.readFileSync(file, 'utf8'));
    else {
      // `fresh`: read the file as it is now, not the module this process imported before (a check of
      // the config a hot restart is about to exec into).
      // (Resolved here: Node's module resolver caches symlink targets, and `current` may have moved.)
      const url = fresh
        ? `${pathToFileURL(fs.realpathSync(file)).href}?nserve-check=${Date.now()}`
        : pathToFileURL(file).href;
      value = ((await import(url)) as { default?: unknown }).default;
    }
  } catch (err) {
    throw usageError(
      'ERR_NSERVE_CONFIG_FILE',
      `config file ${file} failed to load: ${errorMessage(err)}`,
      err,
    );
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw usageError(
      'ERR_NSERVE_CONFIG_FILE',
      `config file ${file} must export an object (export default defineConfig({...}))`,
    );
  }
  const known = new Set<string>([
    'app',
    'bind',
    'port',
    'workers',
    'slots',
    'balance',
    'directory',
    'pidfile',
    'environment',
    'shutdownTimeout',
    'workerTimeout',
    'workerBootTimeout',
    'hookTimeout',
    'drainGrace',
    'keepAliveTimeout',
    'headersTimeout',
    'requestTimeout',
    'longLivedGrace',
    'shutdownDelay',
    'workerMaxMemory',
    'backlog',
    'logLevel',
    'logFormat',
    'leakPolicy',
    'controlUrl',
    'controlToken',
    'metricsUrl',
    'state',
    'redirectStdout',
    'redirectStderr',
    'accessLog',
    'bootCheck',
    'healthPath',
    'readyProbe',
    'readyProbeTimeout',
    'envFile',
    'tagOutput',
    ...HOOK_NAMES,
  ]);
  for (const key of Object.keys(value)) {
    if (!known.has(key)) {
      throw usageError(
        'ERR_NSERVE_INVALID_CONFIG',
        `unknown config key "${key}" in ${file} (valid: ${[...known].join(', ')})`,
      );
    }
  }
  return value as UserConfig;
}

/** Where a setting came from: its default, the config file, a command-line flag, or the environment. */
export type Source = 'default' | 'file' | 'flag' | 'env';
type Picked = { value: unknown; source: Source } | undefined;

/**
 * Settings the environment may give, as PaaS conventions have it: PORT (a bind on 0.0.0.0) and
 * WEB_CONCURRENCY (workers). nserve itself sets PORT for the app once it has bound (NSERVE_PORTS tells
 * so); a PORT it set is not read back as the user's.
 */
function fromEnv(key: 'port' | 'workers', env: NodeJS.ProcessEnv): Picked {
  if (key === 'port' && env.PORT !== undefined && env.NSERVE_PORTS === undefined)
    return { value: env.PORT, source: 'env' };
  if (key === 'workers' && env.WEB_CONCURRENCY !== undefined)
    return { value: env.WEB_CONCURRENCY, source: 'env' };
  return undefined;
}

/** How the user named a setting: `--slots`, `config key slots` or `environment WEB_CONCURRENCY`. */
function settingName(key: string, source: Source): string {
  return source === 'flag'
    ? `--${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`
    : source === 'env'
      ? `environment ${key === 'port' ? 'PORT' : 'WEB_CONCURRENCY'}`
      : `config key ${key}`;
}

function invalid(key: string, value: unknown, source: Source, valid: string): Error {
  return usageError(
    'ERR_NSERVE_INVALID_CONFIG',
    `invalid ${settingName(key, source)}: ${JSON.stringify(value)}: expected ${valid}`,
  );
}

function pick<K extends keyof CliOptions & keyof UserConfig>(
  key: K,
  cli: CliOptions,
  file: UserConfig,
): { value: unknown; source: Source } | undefined {
  if (cli[key] !== undefined) return { value: cli[key], source: 'flag' };
  if (file[key] !== undefined) return { value: file[key], source: 'file' };
  return undefined;
}

function integer(
  key: string,
  v: { value: unknown; source: Source } | undefined,
  min: number,
  max: number,
  dflt: number,
): number {
  if (v === undefined) return dflt;
  const n = typeof v.value === 'string' && /^-?\d+$/.test(v.value.trim()) ? Number(v.value) : v.value;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < min || n > max) {
    throw invalid(key, v.value, v.source, `an integer from ${min} to ${max}`);
  }
  return n;
}

function seconds(
  key: string,
  v: { value: unknown; source: Source } | undefined,
  dfltSeconds: number,
): number {
  if (v === undefined) return dfltSeconds * 1000;
  const n = typeof v.value === 'string' && /^\d+(\.\d+)?$/.test(v.value.trim()) ? Number(v.value) : v.value;
  if (typeof n !== 'number' || !Number.isFinite(n) || n < 0 || n > 86400) {
    throw invalid(key, v.value, v.source, 'a number of seconds from 0 to 86400');
  }
  return Math.round(n * 1000);
}

const SIZE_UNITS: Record<string, number> = {
  '': 1,
  b: 1,
  k: 1024,
  kb: 1024,
  m: 1024 ** 2,
  mb: 1024 ** 2,
  g: 1024 ** 3,
  gb: 1024 ** 3,
};

/** A memory size: bytes as a number, or '512MB', '1.5G', '800k' (powers of 1024). At least 16 MB. */
function byteSize(key: string, v: { value: unknown; source: Source } | undefined): number | undefined {
  if (v === undefined) return undefined;
  const valid = 'a size such as 512MB, 1.5GB or a number of bytes (at least 16MB)';
  let bytes: number | undefined;
  if (typeof v.value === 'number') bytes = v.value;
  else if (typeof v.value === 'string') {
    const m = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(v.value);
    const unit = m?.[2]?.toLowerCase();
    if (m !== null && unit !== undefined && SIZE_UNITS[unit] !== undefined)
      bytes = Number(m[1]) * SIZE_UNITS[unit]!;
  }
  if (bytes === undefined || !Number.isFinite(bytes) || bytes < 16 * 1024 ** 2)
    throw invalid(key, v.value, v.source, valid);
  return Math.round(bytes);
}

function str(key: string, v: { value: unknown; source: Source } | undefined): string | undefined {
  if (v === undefined) return undefined;
  if (typeof v.value !== 'string' || v.value === '')
    throw invalid(key, v.value, v.source, 'a non-empty string');
  return v.value;
}

function hooks(file: UserConfig): Record<HookName, HookFn[]> {
  const out = {} as Record<HookName, HookFn[]>;
  for (const name of HOOK_NAMES) {
    const v = file[name];
    const list = v === undefined ? [] : Array.isArray(v) ? v : [v];
    for (const fn of list) {
      if (typeof fn !== 'function')
        throw invalid(name, typeof fn, 'file', 'a function or an array of functions');
    }
    out[name] = list;
  }
  return out;
}

export async function loadConfig(
  appArg: string | undefined,
  cli: CliOptions,
  cwd: string,
  env: NodeJS.ProcessEnv = process.env,
  options: { fresh?: boolean } = {},
): Promise<Config> {
  const found = findConfigFile(cwd, cli.config, env);
  const file = found === undefined ? {} : await readConfigFile(found.file, options.fresh === true);
  const config = buildConfig(appArg, cli, file, cwd, found, env);
  // ssl:// binds: unreadable files, a key that is not the certificate's → one line, before any bind.
  checkTlsBinds(config.binds);
  return Object.freeze(config);
}

/** `--dotenv FILE` or config key envFile (the flag cannot be --env-file: Node 20 claims that one). */
function envFile(cli: CliOptions, file: UserConfig, sources: Record<string, Source>): string | undefined {
  const v: Picked =
    cli.dotenv !== undefined
      ? { value: cli.dotenv, source: 'flag' }
      : file.envFile !== undefined
        ? { value: file.envFile, source: 'file' }
        : undefined;
  sources.envFile = v?.source ?? 'default';
  if (v === undefined) return undefined;
  if (typeof v.value !== 'string' || v.value === '')
    throw invalid(v.source === 'flag' ? 'dotenv' : 'envFile', v.value, v.source, 'a file path');
  return v.value;
}

function bool(key: string, v: Picked): boolean {
  if (v === undefined) return false;
  if (typeof v.value !== 'boolean') throw invalid(key, v.value, v.source, 'true or false');
  return v.value;
}

/** A request path (with a query, if any) for the ready probe. */
function urlPath(key: string, v: Picked): string | undefined {
  if (v === undefined) return undefined;
  if (typeof v.value !== 'string' || !/^\/[^\s#]*$/.test(v.value)) {
    throw invalid(key, v.value, v.source, 'a URL path starting with /, like /ready');
  }
  return v.value;
}

function healthPath(v: Picked): string | undefined {
  if (v === undefined) return undefined;
  if (typeof v.value !== 'string' || !/^\/[^\s?#]*$/.test(v.value)) {
    throw invalid('healthPath', v.value, v.source, 'a URL path starting with /, like /healthz');
  }
  return v.value;
}

export function buildConfig(
  appArg: string | undefined,
  cli: CliOptions,
  file: UserConfig,
  cwd: string,
  found: FoundConfigFile | undefined,
  env: NodeJS.ProcessEnv = {},
): Config {
  const sources: Record<string, Source> = {};
  const take = <K extends keyof CliOptions & keyof UserConfig>(key: K): Picked => {
    const picked =
      pick(key, cli, file) ?? (key === 'port' || key === 'workers' ? fromEnv(key, env) : undefined);
    sources[key] = picked?.source ?? 'default';
    return picked;
  };
  const app = appArg ?? str('app', file.app === undefined ? undefined : { value: file.app, source: 'file' });
  sources.app = appArg !== undefined ? 'flag' : 'file';
  if (app === undefined) {
    throw usageError(
      'ERR_NSERVE_USAGE',
      'missing APP: name the app module to serve (nserve start app.mjs) or set "app" in the config file',
    );
  }
  const bindUris: { value: unknown; source: Source }[] = [];
  const bindOpt = take('bind');
  if (bindOpt !== undefined) {
    const list = Array.isArray(bindOpt.value) ? bindOpt.value : [bindOpt.value];
    for (const u of list) bindUris.push({ value: u, source: bindOpt.source });
  }
  let portOpt = take('port');
  if (portOpt?.source === 'env' && bindOpt !== undefined) {
    // PORT from the environment is the default bind, not an extra one.
    portOpt = undefined;
    sources.port = 'default';
  }
  if (portOpt !== undefined) {
    const port = integer('port', portOpt, 0, 65535, 0);
    bindUris.push({ value: `tcp://0.0.0.0:${port}`, source: portOpt.source });
  }
  if (bindUris.length === 0) bindUris.push({ value: 'tcp://0.0.0.0:3000', source: 'flag' });
  const binds: BindSpec[] = [];
  for (const b of bindUris) {
    if (typeof b.value !== 'string')
      throw invalid('bind', b.value, b.source, 'a bind URI string like tcp://127.0.0.1:3000');
    const spec = parseBindUri(b.value);
    if (binds.some((x) => x.uri === spec.uri)) continue;
    binds.push(spec);
  }
  const workers = integer('workers', take('workers'), 0, 256, 0);
  const logLevel = (str('logLevel', take('logLevel')) ?? 'info') as LevelWithSilent;
  if (!LOG_LEVELS.includes(logLevel)) {
    throw invalid(
      'logLevel',
      logLevel,
      cli.logLevel !== undefined ? 'flag' : 'file',
      `one of ${LOG_LEVELS.join(', ')}`,
    );
  }
  const formatOpt = take('logFormat');
  const logFormat = str('logFormat', formatOpt) as LogFormat | undefined;
  if (logFormat !== undefined && !LOG_FORMATS.includes(logFormat)) {
    throw invalid('logFormat', logFormat, formatOpt?.source ?? 'flag', `one of ${LOG_FORMATS.join(', ')}`);
  }
  const leakOpt = take('leakPolicy');
  const leakPolicy = (str('leakPolicy', leakOpt) ?? 'close') as LeakPolicy;
  if (!LEAK_POLICIES.includes(leakPolicy)) {
    throw invalid('leakPolicy', leakPolicy, leakOpt?.source ?? 'flag', `one of ${LEAK_POLICIES.join(', ')}`);
  }
  const dir = str('directory', take('directory'));
  const directory = path.resolve(cwd, dir ?? '.');
  if (!fs.existsSync(directory) || !fs.statSync(directory).isDirectory()) {
    throw usageError('ERR_NSERVE_INVALID_CONFIG', `invalid --directory: ${directory} is not a directory`);
  }
  const pidfile = str('pidfile', take('pidfile'));
  const state = str('state', take('state'));
  const stateFile = state === undefined ? undefined : path.resolve(cwd, state);
  const control = controlConfig(take, stateFile);
  const metricsUrl = metricsAddress(take('metricsUrl'));
  const redirectStdout = str('redirectStdout', take('redirectStdout'));
  const redirectStderr = str('redirectStderr', take('redirectStderr'));
  const slotsOpt = take('slots');
  const slots = slotCount(slotsOpt, binds, workers);
  const balance = balanceMode(take('balance'), binds, workers, slots, slotsOpt?.source ?? 'default');
  const httpTimeout = (key: 'keepAliveTimeout' | 'headersTimeout' | 'requestTimeout'): number | undefined => {
    const v = take(key);
    return v === undefined ? undefined : seconds(key, v, 0);
  };
  const keepAliveTimeoutMs = httpTimeout('keepAliveTimeout');
  const headersTimeoutMs = httpTimeout('headersTimeout');
  const requestTimeoutMs = httpTimeout('requestTimeout');
  if (headersTimeoutMs !== undefined && requestTimeoutMs !== undefined && requestTimeoutMs > 0) {
    if (headersTimeoutMs > requestTimeoutMs)
      throw invalid(
        'headersTimeout',
        headersTimeoutMs / 1000,
        sources.headersTimeout ?? 'flag',
        `at most the request timeout (${requestTimeoutMs / 1000} s): Node requires headersTimeout <= requestTimeout`,
      );
  }
  return {
    app,
    // The binder reads the balance of each TCP bind from its spec.
    binds: balance === 'kernel' ? binds : binds.map((b) => (b.kind === 'tcp' ? { ...b, balance } : b)),
    workers,
    slots,
    balance,
    directory,
    pidfile: pidfile === undefined ? undefined : path.resolve(cwd, pidfile),
    environment: str('environment', take('environment')),
    shutdownTimeoutMs: seconds('shutdownTimeout', take('shutdownTimeout'), 30),
    workerTimeoutMs: seconds('workerTimeout', take('workerTimeout'), 60),
    workerBootTimeoutMs: seconds('workerBootTimeout', take('workerBootTimeout'), 60),
    hookTimeoutMs: seconds('hookTimeout', take('hookTimeout'), 30),
    drainGraceMs: seconds('drainGrace', take('drainGrace'), 1),
    keepAliveTimeoutMs,
    headersTimeoutMs,
    requestTimeoutMs,
    longLivedGraceMs: seconds('longLivedGrace', take('longLivedGrace'), 2),
    shutdownDelayMs: seconds('shutdownDelay', take('shutdownDelay'), 0),
    workerMaxMemory: byteSize('workerMaxMemory', take('workerMaxMemory')),
    backlog: integer('backlog', take('backlog'), 1, 65535, 1024),
    logLevel,
    logFormat,
    leakPolicy,
    control,
    metricsUrl,
    metrics: metricsUrl !== undefined || control !== undefined,
    stateFile,
    redirectStdout: redirectStdout === undefined ? undefined : path.resolve(cwd, redirectStdout),
    redirectStderr: redirectStderr === undefined ? undefined : path.resolve(cwd, redirectStderr),
    accessLog: bool('accessLog', take('accessLog')),
    bootCheck: bool('bootCheck', take('bootCheck')),
    healthPath: healthPath(take('healthPath')),
    readyProbe: urlPath('readyProbe', take('readyProbe')),
    readyProbeTimeoutMs: seconds('readyProbeTimeout', take('readyProbeTimeout'), 5),
    envFile: envFile(cli, file, sources),
    tagOutput: bool('tagOutput', take('tagOutput')),
    configFile: found?.file,
    configSource: found?.source,
    hooks: hooks(file),
    sources,
  };
}

/**
 * Descriptors one channel message can carry (native.ts MAX_FDS, fdpass.cc kMaxFds). The master sends a
 * worker the slots it adds in one message, and while other workers are down (crash, boot) one worker may be
 * lent every slot of every bind: so the listening sockets of all binds together must fit in one message.
 * Past that, the server used to report booted and READY while no worker could take its slots.
 */
export const MAX_SOCKETS_PER_WORKER = 64;

function slotCount(opt: Picked, binds: readonly BindSpec[], workers: number): number {
  const tcpBinds = binds.filter((b) => b.kind === 'tcp').length;
  // A unix bind is one socket shared by all workers.
  const shared = binds.length - tcpBinds;
  const fit = tcpBinds === 0 ? 1 : Math.max(1, Math.floor((MAX_SOCKETS_PER_WORKER - shared) / tcpBinds));
  // The default (one slot per worker) is capped so that many workers still start: workers then share slots.
  const slots = integer('slots', opt, 1, 256, Math.max(1, workers === 0 ? 1 : Math.min(workers, fit)));
  const sockets = tcpBinds * slots + shared;
  if (workers === 0 || sockets <= MAX_SOCKETS_PER_WORKER) return slots;
  const why = `a worker may have to hold every listening socket while others are down, and one channel message carries at most ${MAX_SOCKETS_PER_WORKER} descriptors`;
  if (opt !== undefined && fit * tcpBinds + shared <= MAX_SOCKETS_PER_WORKER) {
    throw invalid(
      'slots',
      opt.value,
      opt.source,
      `an integer from 1 to ${fit} with ${tcpBinds} TCP bind${tcpBinds === 1 ? '' : 's'}${shared > 0 ? ` and ${shared} unix bind${shared === 1 ? '' : 's'}` : ''} (${why})`,
    );
  }
  throw usageError(
    'ERR_NSERVE_INVALID_CONFIG',
    `invalid --bind: ${binds.length} binds make ${sockets} listening sockets: expected at most ${MAX_SOCKETS_PER_WORKER} in cluster mode (${why})`,
  );
}

/**
 * `--balance`. ip-hash pins a client address to a slot, so it is only sticky where a slot is one socket
 * group of its own (TCP) and where each slot is served by one worker: refused for unix binds, and when
 * there are fewer slots than workers (socket-activated sockets are refused by the binder, which sees them).
 */
function balanceMode(
  opt: Picked,
  binds: readonly BindSpec[],
  workers: number,
  slots: number,
  slotsSource: Source,
): Balance {
  if (opt === undefined) return 'kernel';
  if (typeof opt.value !== 'string' || !(BALANCES as readonly string[]).includes(opt.value)) {
    throw invalid('balance', opt.value, opt.source, `one of ${BALANCES.join(', ')}`);
  }
  const balance = opt.value as Balance;
  if (balance !== 'ip-hash') return balance;
  const name = `${settingName('balance', opt.source)} ip-hash`;
  const unix = binds.find((b) => b.kind === 'unix');
  if (unix !== undefined) {
    throw usageError(
      'ERR_NSERVE_INVALID_CONFIG',
      `invalid ${name}: ${unix.uri} is a unix socket shared by all workers; ip-hash balances the reuseport slots of TCP binds only`,
    );
  }
  if (workers > 0 && slots < workers) {
    const given = slotsSource === 'default' ? `${slots} slots (the most that fit)` : `--slots ${slots}`;
    throw usageError(
      'ERR_NSERVE_INVALID_CONFIG',
      `invalid ${name}: ${given} for ${workers} workers: workers would share slots and a client would reach any of them; use at least as many slots as workers`,
    );
  }
  return balance;
}

export interface MetricsAddress {
  family: 'tcp4' | 'tcp6';
  host: string;
  port: number;
  uri: string;
}

const METRICS_URL = 'tcp://HOST:PORT, like tcp://127.0.0.1:9100 (a read-only listener for Prometheus)';

function metricsAddress(v: Picked): MetricsAddress | undefined {
  const url = str('metricsUrl', v);
  if (url === undefined || v === undefined) return undefined;
  if (!url.startsWith('tcp://')) throw invalid('metricsUrl', url, v.source, METRICS_URL);
  let spec: BindSpec;
  try {
    spec = parseBindUri(url);
  } catch {
    throw invalid('metricsUrl', url, v.source, METRICS_URL);
  }
  if (spec.kind !== 'tcp') throw invalid('metricsUrl', url, v.source, METRICS_URL);
  return { family: spec.family, host: spec.host, port: spec.port, uri: spec.uri };
}

function controlConfig(
  take: (key: 'controlUrl' | 'controlToken') => Picked,
  stateFile: string | undefined,
): ControlConfig | undefined {
  const url = take('controlUrl');
  const token = take('controlToken');
  if (token !== undefined && typeof token.value !== 'string')
    throw usageError('ERR_NSERVE_INVALID_CONFIG', 'invalid config key controlToken: expected a string');
  const name = (key: string, source: Source | undefined): string =>
    source === 'file' ? `config key ${key}` : `--${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
  return resolveControl({
    url: str('controlUrl', url),
    token: token?.value as string | undefined,
    stateFile,
    urlName: name('controlUrl', url?.source),
    tokenName: name('controlToken', token?.source),
    // `auto` keeps the token this PID generated before a hot restart, so clients holding it go on.
    previousToken: stateFile === undefined ? undefined : previousAutoToken(stateFile),
  });
}

function previousAutoToken(stateFile: string): string | undefined {
  try {
    const state = readStateFile(stateFile);
    return state?.pid === process.pid ? state.controlToken : undefined;
  } catch {
    return undefined;
  }
}

/** The configuration as `nserve config --print` shows it: values (secrets redacted) and their sources. */
export function describeConfig(
  config: Config,
): Record<string, { value: unknown; source: Source | 'cwd' | 'none' }> {
  const out: Record<string, { value: unknown; source: Source | 'cwd' | 'none' }> = {};
  const source = (key: string): Source => config.sources[key] ?? 'default';
  out.app = { value: config.app, source: source('app') };
  out.bind = {
    value: config.binds.map((b) => b.uri),
    source: config.sources.bind !== 'default' ? source('bind') : source('port'),
  };
  const plain: [keyof Config, string, (v: never) => unknown][] = [
    ['workers', 'workers', (v: number) => v],
    ['slots', 'slots', (v: number) => v],
    ['balance', 'balance', (v: string) => v],
    ['directory', 'directory', (v: string) => v],
    ['pidfile', 'pidfile', (v: string | undefined) => v ?? null],
    ['environment', 'environment', (v: string | undefined) => v ?? null],
    ['shutdownTimeoutMs', 'shutdownTimeout', (v: number) => v / 1000],
    ['workerTimeoutMs', 'workerTimeout', (v: number) => v / 1000],
    ['workerBootTimeoutMs', 'workerBootTimeout', (v: number) => v / 1000],
    ['hookTimeoutMs', 'hookTimeout', (v: number) => v / 1000],
    ['drainGraceMs', 'drainGrace', (v: number) => v / 1000],
    [
      'keepAliveTimeoutMs',
      'keepAliveTimeout',
      (v: number | undefined) => (v === undefined ? null : v / 1000),
    ],
    ['headersTimeoutMs', 'headersTimeout', (v: number | undefined) => (v === undefined ? null : v / 1000)],
    ['requestTimeoutMs', 'requestTimeout', (v: number | undefined) => (v === undefined ? null : v / 1000)],
    ['longLivedGraceMs', 'longLivedGrace', (v: number) => v / 1000],
    ['shutdownDelayMs', 'shutdownDelay', (v: number) => v / 1000],
    ['workerMaxMemory', 'workerMaxMemory', (v: number | undefined) => v ?? null],
    ['backlog', 'backlog', (v: number) => v],
    ['logLevel', 'logLevel', (v: string) => v],
    ['logFormat', 'logFormat', (v: string | undefined) => v ?? 'auto'],
    ['leakPolicy', 'leakPolicy', (v: string) => v],
    ['stateFile', 'state', (v: string | undefined) => v ?? null],
    ['redirectStdout', 'redirectStdout', (v: string | undefined) => v ?? null],
    ['redirectStderr', 'redirectStderr', (v: string | undefined) => v ?? null],
    ['accessLog', 'accessLog', (v: boolean) => v],
    ['bootCheck', 'bootCheck', (v: boolean) => v],
    ['healthPath', 'healthPath', (v: string | undefined) => v ?? null],
    ['readyProbe', 'readyProbe', (v: string | undefined) => v ?? null],
    ['readyProbeTimeoutMs', 'readyProbeTimeout', (v: number) => v / 1000],
    ['envFile', 'envFile', (v: string | undefined) => v ?? null],
    ['tagOutput', 'tagOutput', (v: boolean) => v],
  ];
  for (const [field, key, show] of plain)
    out[key] = { value: show(config[field] as never), source: source(key) };
  out.controlUrl = {
    value: config.control === undefined ? null : formatControlUrl(config.control.address),
    source: source('controlUrl'),
  };
  out.controlToken = {
    value: config.control?.token === undefined ? null : '(redacted)',
    source: source('controlToken'),
  };
  out.metricsUrl = { value: config.metricsUrl?.uri ?? null, source: source('metricsUrl') };
  for (const name of HOOK_NAMES) {
    const n = config.hooks[name].length;
    out[name] = { value: `${n} hook${n === 1 ? '' : 's'}`, source: n > 0 ? 'file' : 'default' };
  }
  out.configFile = { value: config.configFile ?? null, source: config.configSource ?? 'none' };
  return out;
}

export function formatConfig(config: Config): string {
  const how: Record<string, string> = { flag: 'flag -C', env: `env ${CONFIG_ENV}`, cwd: 'found in cwd' };
  const rows = Object.entries(describeConfig(config)).map(
    ([k, v]) =>
      [k, JSON.stringify(v.value), k === 'configFile' ? (how[v.source] ?? v.source) : v.source] as const,
  );
  const w0 = Math.max(...rows.map((r) => r[0].length));
  const w1 = Math.max(...rows.map((r) => r[1].length));
  return `${rows.map(([k, v, src]) => `${k.padEnd(w0)}  ${v.padEnd(w1)}  ${src}`).join('\n')}\n`;
}
