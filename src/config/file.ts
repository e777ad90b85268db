// Finding the config file (-C, $NSERVE_CONFIG, the working directory), reading it, and loading the Config.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { errorMessage, NserveError, usageError } from '../errors.js';
import { checkTlsBinds } from '../listen/tls.js';
import { type BuildOptions, buildConfig } from './build.js';
import { type CliOptions, type Config, HOOK_NAMES, type UserConfig } from './types.js';

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
  let isFile = true;
  try {
    isFile = fs.statSync(file).isFile();
  } catch {
    // missing or unreadable: the load below says which
  }
  if (!isFile)
    throw usageError(
      'ERR_NSERVE_CONFIG_FILE',
      `config file ${file} is not a file: -C takes a config file (nserve.config.mjs, .js, .cjs or .json)`,
    );
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
    'args',
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
    'switchTimeout',
    'shutdownDelay',
    'workerMaxMemory',
    'backlog',
    'logLevel',
    'logFormat',
    'leakPolicy',
    'restartOverflow',
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
    'canary',
    'phaseConcurrency',
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

export async function loadConfig(
  appArg: string | undefined,
  cli: CliOptions,
  cwd: string,
  env: NodeJS.ProcessEnv = process.env,
  options: BuildOptions & { fresh?: boolean } = {},
): Promise<Config> {
  const found = findConfigFile(cwd, cli.config, env);
  const file = found === undefined ? {} : await readConfigFile(found.file, options.fresh === true);
  let config: Config;
  try {
    config = buildConfig(appArg, cli, file, cwd, found, env, options);
  } catch (err) {
    // A value from the file: say which file (`invalid config key bind (in /srv/app/nserve.config.json): …`).
    if (found === undefined || !(err instanceof NserveError) || !err.message.includes('config key '))
      throw err;
    throw usageError(
      err.code,
      err.message.replace(/config key (\w+)/, `config key $1 (in ${found.file})`),
      err,
    );
  }
  // ssl:// binds: unreadable files, a key that is not the certificate's → one line, before any bind.
  checkTlsBinds(config.binds);
  return Object.freeze(config);
}
