// All settings → one Config: defaults, flag over file over environment. The settings that stand alone
// are parsed as the table says (settings.ts); the checks across settings (slots per worker, balance,
// HTTP timeouts, control and metrics addresses) are here and in derive.ts.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { LevelWithSilent } from 'pino';
import { NserveError, usageError } from '../errors.js';
import { type BindSpec, parseBindUri } from '../listen/bind-uri.js';
import type { LogFormat } from '../log/logger.js';
import type { LeakPolicy } from '../os/descriptors.js';
import {
  appArgs,
  balanceMode,
  controlConfig,
  distinctAddresses,
  distinctFiles,
  metricsAddress,
  phasedRollout,
  slotCount,
} from './derive.js';
import type { FoundConfigFile } from './file.js';
import { SETTINGS, type Setting } from './settings.js';
import type { CliOptions, Config, UserConfig } from './types.js';
import { envFile, fromEnv, hooks, integer, invalid, type Picked, pick, type Source, str } from './values.js';

export interface BuildOptions {
  /**
   * A worker: it loads the release its master resolved (and names), not --directory, which may point
   * nowhere meanwhile (a deploy switching `current`): a replacement for a crashed worker must still boot.
   */
  directoryMayBeGone?: boolean;
}

/** What buildConfig reads: the command line, the config file and where it was found, the environment. */
export interface BuildInput extends BuildOptions {
  /** The APP argument of the command line (undefined: the config file's `app`). */
  app: string | undefined;
  cli: CliOptions;
  file: UserConfig;
  /** The launch directory: relative paths (--directory, --pidfile, …) are resolved against it. */
  cwd: string;
  found?: FoundConfigFile | undefined;
  /** PORT and WEB_CONCURRENCY are read from it (values.ts SETTING_ENV). */
  env?: NodeJS.ProcessEnv;
}

/** One setting's raw value and where it came from (flag, file, environment); records the source. */
type Take = (key: keyof CliOptions & keyof UserConfig) => Picked;

/** The Config fields the table parses on its own (settings with `parse`). */
type StandaloneField = Extract<(typeof SETTINGS)[number], { parse: unknown }>['field'];
type Standalone = Pick<Config, StandaloneField>;

export function buildConfig(input: BuildInput): Config {
  const { cli, file, cwd, found } = input;
  const sources: Record<string, Source> = {};
  const take: Take = (key) => {
    const picked = pick(key, cli, file) ?? fromEnv(key, input.env ?? {});
    sources[key] = picked?.source ?? 'default';
    return picked;
  };
  const app = appName(input.app, file, sources);
  const args = appArgs(take('args'));
  const binds = bindSpecs(take, sources);
  const standalone = parseStandalone(take);
  const { workers } = standalone;
  const directory = directoryOf(str('directory', take('directory')), cwd, input.directoryMayBeGone === true);
  const files = ownFiles(take, cwd);
  const control = controlConfig(take, files.stateFile);
  const metricsUrl = metricsAddress(take('metricsUrl'));
  distinctAddresses(binds, control, metricsUrl, sources);
  const slotsOpt = take('slots');
  const slots = slotCount(slotsOpt, binds, workers);
  const balance = balanceMode(take('balance'), binds, workers, slots, slotsOpt?.source ?? 'default');
  checkHttpTimeouts(standalone, sources);
  distinctFiles(
    [
      ['pidfile', files.pidfile],
      ['state', files.stateFile],
      ['redirectStdout', files.redirectStdout],
      ['redirectStderr', files.redirectStderr],
    ],
    sources,
  );
  return {
    ...standalone,
    ...files,
    app,
    args,
    // The binder reads the balance of each TCP bind from its spec.
    binds: balance === 'kernel' ? binds : binds.map((b) => (b.kind === 'tcp' ? { ...b, balance } : b)),
    slots,
    balance,
    directory,
    control,
    metricsUrl,
    metrics: metricsUrl !== undefined || control !== undefined,
    envFile: envFile(cli, file, sources),
    ...phasedRollout(take, workers),
    configFile: found?.file,
    configSource: found?.source,
    hooks: hooks(file),
    sources,
  };
}

/** The app: the command line's APP, else the config file's `app`; missing, said in one line. */
function appName(appArg: string | undefined, file: UserConfig, sources: Record<string, Source>): string {
  const app = appArg ?? str('app', file.app === undefined ? undefined : { value: file.app, source: 'file' });
  sources.app = appArg !== undefined ? 'flag' : 'file';
  if (app === undefined) {
    throw usageError(
      'ERR_NSERVE_USAGE',
      'missing APP: name the app module to serve (nserve start app.mjs) or set "app" in the config file',
    );
  }
  return app;
}

/** --bind (repeatable) and --port (or PORT), deduplicated; tcp://0.0.0.0:3000 when neither is set. */
function bindSpecs(take: Take, sources: Record<string, Source>): BindSpec[] {
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
    let spec: BindSpec;
    try {
      spec = parseBindUri(b.value);
    } catch (err) {
      if (b.source !== 'file' || !(err instanceof NserveError)) throw err;
      throw usageError(err.code, `invalid config key bind: ${err.message}`, err);
    }
    if (binds.some((x) => x.uri === spec.uri)) continue;
    binds.push(spec);
  }
  return binds;
}

/** Every setting the table parses on its own (its default included), in the table's order. */
function parseStandalone(take: Take): Standalone {
  const out: Record<string, unknown> = {};
  for (const setting of SETTINGS as readonly Setting[]) {
    if (setting.parse === undefined || setting.field === undefined) continue;
    out[setting.field] = setting.parse(setting.key, take(setting.key as Parameters<Take>[0]));
  }
  // The table's parsers checked the choices: these casts name what they checked.
  return out as unknown as Standalone & {
    logLevel: LevelWithSilent;
    logFormat: LogFormat | undefined;
    leakPolicy: LeakPolicy;
  };
}

/** --directory, absolute (not resolved: a symlinked release is re-resolved at every (re)start). */
function directoryOf(dir: string | undefined, cwd: string, mayBeGone: boolean): string {
  const directory = path.resolve(cwd, dir ?? '.');
  if (!mayBeGone && (!fs.existsSync(directory) || !fs.statSync(directory).isDirectory())) {
    throw usageError('ERR_NSERVE_INVALID_CONFIG', `invalid --directory: ${directory} is not a directory`);
  }
  return directory;
}

/** The files nserve writes or appends to, resolved against the launch directory. */
function ownFiles(
  take: Take,
  cwd: string,
): Pick<Config, 'pidfile' | 'stateFile' | 'redirectStdout' | 'redirectStderr'> {
  const resolved = (key: 'pidfile' | 'state' | 'redirectStdout' | 'redirectStderr'): string | undefined => {
    const file = str(key, take(key));
    return file === undefined ? undefined : path.resolve(cwd, file);
  };
  return {
    pidfile: resolved('pidfile'),
    stateFile: resolved('state'),
    redirectStdout: resolved('redirectStdout'),
    redirectStderr: resolved('redirectStderr'),
  };
}

/** Node requires headersTimeout <= requestTimeout (when the request timeout is set and not 0). */
function checkHttpTimeouts(
  t: Pick<Config, 'headersTimeoutMs' | 'requestTimeoutMs'>,
  sources: Record<string, Source>,
): void {
  const { headersTimeoutMs, requestTimeoutMs } = t;
  if (headersTimeoutMs === undefined || requestTimeoutMs === undefined || requestTimeoutMs === 0) return;
  if (headersTimeoutMs > requestTimeoutMs)
    throw invalid(
      'headersTimeout',
      headersTimeoutMs / 1000,
      sources.headersTimeout ?? 'flag',
      `at most the request timeout (${requestTimeoutMs / 1000} s): Node requires headersTimeout <= requestTimeout`,
    );
}
