// CLI options + config file → one validated, frozen Config. Nothing downstream re-reads argv or env.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import type { LevelWithSilent } from 'pino';
import { type BindSpec, parseBindUri } from './binder.js';
import { type ControlConfig, resolveControl } from './control/api.js';
import { errorMessage, usageError } from './errors.js';
import { LEAK_POLICIES, type LeakPolicy } from './fds.js';
import { LOG_LEVELS } from './logger.js';
import { readStateFile } from './statefile.js';

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
  directory?: string;
  pidfile?: string;
  environment?: string;
  shutdownTimeout?: number;
  workerTimeout?: number;
  workerBootTimeout?: number;
  hookTimeout?: number;
  drainGrace?: number;
  backlog?: number;
  logLevel?: LevelWithSilent;
  leakPolicy?: LeakPolicy;
  controlUrl?: string;
  controlToken?: string;
  state?: string;
  redirectStdout?: string;
  redirectStderr?: string;
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
  /** Absolute, not resolved: a symlinked release directory is re-resolved at every (re)start. */
  directory: string;
  pidfile: string | undefined;
  environment: string | undefined;
  shutdownTimeoutMs: number;
  workerTimeoutMs: number;
  workerBootTimeoutMs: number;
  hookTimeoutMs: number;
  drainGraceMs: number;
  backlog: number;
  logLevel: LevelWithSilent;
  /** What to do with descriptors that would leak into a hot-restarted image. */
  leakPolicy: LeakPolicy;
  /** The control server (master or single only), if `--control-url` is set. */
  control: ControlConfig | undefined;
  /** `--state`: where `nserve ctl -S` finds the PID, control URL and token. */
  stateFile: string | undefined;
  /** `--redirect-stdout` / `--redirect-stderr`: appended to, reopened on SIGHUP. */
  redirectStdout: string | undefined;
  redirectStderr: string | undefined;
  configFile: string | undefined;
  hooks: Readonly<Record<HookName, readonly HookFn[]>>;
}

/** The `start` command's flags as commander parsed them (strings, before validation). */
export interface CliOptions {
  bind?: string[];
  port?: string;
  workers?: string;
  slots?: string;
  directory?: string;
  pidfile?: string;
  environment?: string;
  shutdownTimeout?: string;
  workerTimeout?: string;
  workerBootTimeout?: string;
  hookTimeout?: string;
  drainGrace?: string;
  backlog?: string;
  logLevel?: string;
  leakPolicy?: string;
  controlUrl?: string;
  controlToken?: string;
  state?: string;
  redirectStdout?: string;
  redirectStderr?: string;
  config?: string;
}

const CONFIG_NAMES = ['nserve.config.mjs', 'nserve.config.js', 'nserve.config.cjs', 'nserve.config.json'];

export function findConfigFile(cwd: string, explicit: string | undefined): string | undefined {
  if (explicit !== undefined) {
    const file = path.resolve(cwd, explicit);
    if (!fs.existsSync(file)) throw usageError('ERR_NSERVE_CONFIG_FILE', `config file not found: ${file}`);
    return file;
  }
  return CONFIG_NAMES.map((n) => path.join(cwd, n)).find((f) => fs.existsSync(f));
}

export async function readConfigFile(file: string): Promise<UserConfig> {
  let value: unknown;
  try {
    if (file.endsWith('.json')) value = JSON.parse(fs.readFileSync(file, 'utf8'));
    else value = ((await import(pathToFileURL(file).href)) as { default?: unknown }).default;
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
    'directory',
    'pidfile',
    'environment',
    'shutdownTimeout',
    'workerTimeout',
    'workerBootTimeout',
    'hookTimeout',
    'drainGrace',
    'backlog',
    'logLevel',
    'leakPolicy',
    'controlUrl',
    'controlToken',
    'state',
    'redirectStdout',
    'redirectStderr',
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

type Source = 'flag' | 'file';
function invalid(key: string, value: unknown, source: Source, valid: string): Error {
  const where =
    source === 'flag' ? `--${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}` : `config key ${key}`;
  return usageError(
    'ERR_NSERVE_INVALID_CONFIG',
    `invalid ${where}: ${JSON.stringify(value)}: expected ${valid}`,
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

export async function loadConfig(appArg: string | undefined, cli: CliOptions, cwd: string): Promise<Config> {
  const configFile = findConfigFile(cwd, cli.config);
  const file = configFile === undefined ? {} : await readConfigFile(configFile);
  return Object.freeze(buildConfig(appArg, cli, file, cwd, configFile));
}

export function buildConfig(
  appArg: string | undefined,
  cli: CliOptions,
  file: UserConfig,
  cwd: string,
  configFile: string | undefined,
): Config {
  const app = appArg ?? str('app', file.app === undefined ? undefined : { value: file.app, source: 'file' });
  if (app === undefined) {
    throw usageError(
      'ERR_NSERVE_USAGE',
      'missing APP: name the app module to serve (nserve start app.mjs) or set "app" in the config file',
    );
  }
  const bindUris: { value: unknown; source: Source }[] = [];
  const bindOpt = pick('bind', cli, file);
  if (bindOpt !== undefined) {
    const list = Array.isArray(bindOpt.value) ? bindOpt.value : [bindOpt.value];
    for (const u of list) bindUris.push({ value: u, source: bindOpt.source });
  }
  const portOpt = pick('port', cli, file);
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
  const workers = integer('workers', pick('workers', cli, file), 0, 256, 0);
  const logLevel = (str('logLevel', pick('logLevel', cli, file)) ?? 'info') as LevelWithSilent;
  if (!LOG_LEVELS.includes(logLevel)) {
    throw invalid(
      'logLevel',
      logLevel,
      cli.logLevel !== undefined ? 'flag' : 'file',
      `one of ${LOG_LEVELS.join(', ')}`,
    );
  }
  const leakOpt = pick('leakPolicy', cli, file);
  const leakPolicy = (str('leakPolicy', leakOpt) ?? 'close') as LeakPolicy;
  if (!LEAK_POLICIES.includes(leakPolicy)) {
    throw invalid('leakPolicy', leakPolicy, leakOpt?.source ?? 'flag', `one of ${LEAK_POLICIES.join(', ')}`);
  }
  const dir = str('directory', pick('directory', cli, file));
  const directory = path.resolve(cwd, dir ?? '.');
  if (!fs.existsSync(directory) || !fs.statSync(directory).isDirectory()) {
    throw usageError('ERR_NSERVE_INVALID_CONFIG', `invalid --directory: ${directory} is not a directory`);
  }
  const pidfile = str('pidfile', pick('pidfile', cli, file));
  const state = str('state', pick('state', cli, file));
  const stateFile = state === undefined ? undefined : path.resolve(cwd, state);
  const control = controlConfig(cli, file, stateFile);
  const redirectStdout = str('redirectStdout', pick('redirectStdout', cli, file));
  const redirectStderr = str('redirectStderr', pick('redirectStderr', cli, file));
  return {
    app,
    binds,
    workers,
    slots: integer('slots', pick('slots', cli, file), 1, 256, Math.max(1, workers)),
    directory,
    pidfile: pidfile === undefined ? undefined : path.resolve(cwd, pidfile),
    environment: str('environment', pick('environment', cli, file)),
    shutdownTimeoutMs: seconds('shutdownTimeout', pick('shutdownTimeout', cli, file), 30),
    workerTimeoutMs: seconds('workerTimeout', pick('workerTimeout', cli, file), 60),
    workerBootTimeoutMs: seconds('workerBootTimeout', pick('workerBootTimeout', cli, file), 60),
    hookTimeoutMs: seconds('hookTimeout', pick('hookTimeout', cli, file), 30),
    drainGraceMs: seconds('drainGrace', pick('drainGrace', cli, file), 1),
    backlog: integer('backlog', pick('backlog', cli, file), 1, 65535, 1024),
    logLevel,
    leakPolicy,
    control,
    stateFile,
    redirectStdout: redirectStdout === undefined ? undefined : path.resolve(cwd, redirectStdout),
    redirectStderr: redirectStderr === undefined ? undefined : path.resolve(cwd, redirectStderr),
    configFile,
    hooks: hooks(file),
  };
}

function controlConfig(
  cli: CliOptions,
  file: UserConfig,
  stateFile: string | undefined,
): ControlConfig | undefined {
  const url = pick('controlUrl', cli, file);
  const token = pick('controlToken', cli, file);
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
