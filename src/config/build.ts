// All settings → one Config: defaults, flag over file over environment. The checks across settings
// (slots per worker, balance, HTTP timeouts, control and metrics addresses) are in derive.ts.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { LevelWithSilent } from 'pino';
import { HEARTBEAT_INTERVAL_MS } from '../cluster/protocol.js';
import { NserveError, usageError } from '../errors.js';
import { type BindSpec, parseBindUri } from '../listen/binder.js';
import { LOG_FORMATS, LOG_LEVELS, type LogFormat } from '../log/logger.js';
import { RESTART_OVERFLOWS, type RestartOverflow } from '../memory/fit.js';
import { LEAK_POLICIES, type LeakPolicy } from '../os/descriptors.js';
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
import type { CliOptions, Config, UserConfig } from './types.js';
import {
  bool,
  byteSize,
  envFile,
  fromEnv,
  healthPath,
  hooks,
  integer,
  invalid,
  type Picked,
  pick,
  type Source,
  seconds,
  str,
  urlPath,
} from './values.js';

export interface BuildOptions {
  /**
   * A worker: it loads the release its master resolved (and names), not --directory, which may point
   * nowhere meanwhile (a deploy switching `current`): a replacement for a crashed worker must still boot.
   */
  directoryMayBeGone?: boolean;
}

export function buildConfig(
  appArg: string | undefined,
  cli: CliOptions,
  file: UserConfig,
  cwd: string,
  found: FoundConfigFile | undefined,
  env: NodeJS.ProcessEnv = {},
  options: BuildOptions = {},
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
  const args = appArgs(take('args'));
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
  const overflowOpt = take('restartOverflow');
  const restartOverflow = (str('restartOverflow', overflowOpt) ?? 'staged') as RestartOverflow;
  if (!RESTART_OVERFLOWS.includes(restartOverflow)) {
    const valid = `one of ${RESTART_OVERFLOWS.join(', ')}`;
    throw invalid('restartOverflow', restartOverflow, overflowOpt?.source ?? 'flag', valid);
  }
  const dir = str('directory', take('directory'));
  const directory = path.resolve(cwd, dir ?? '.');
  if (!options.directoryMayBeGone && (!fs.existsSync(directory) || !fs.statSync(directory).isDirectory())) {
    throw usageError('ERR_NSERVE_INVALID_CONFIG', `invalid --directory: ${directory} is not a directory`);
  }
  const resolved = (file: string | undefined): string | undefined =>
    file === undefined ? undefined : path.resolve(cwd, file);
  const pidfile = resolved(str('pidfile', take('pidfile')));
  const stateFile = resolved(str('state', take('state')));
  const control = controlConfig(take, stateFile);
  const metricsUrl = metricsAddress(take('metricsUrl'));
  distinctAddresses(binds, control, metricsUrl, sources);
  const redirectStdout = resolved(str('redirectStdout', take('redirectStdout')));
  const redirectStderr = resolved(str('redirectStderr', take('redirectStderr')));
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
  distinctFiles(
    [
      ['pidfile', pidfile],
      ['state', stateFile],
      ['redirectStdout', redirectStdout],
      ['redirectStderr', redirectStderr],
    ],
    sources,
  );
  return {
    app,
    args,
    // The binder reads the balance of each TCP bind from its spec.
    binds: balance === 'kernel' ? binds : binds.map((b) => (b.kind === 'tcp' ? { ...b, balance } : b)),
    workers,
    slots,
    balance,
    directory,
    pidfile,
    environment: str('environment', take('environment')),
    shutdownTimeoutMs: seconds('shutdownTimeout', take('shutdownTimeout'), 30),
    workerTimeoutMs: seconds('workerTimeout', take('workerTimeout'), 60, {
      min: (2 * HEARTBEAT_INTERVAL_MS) / 1000,
      why: `workers check in every ${HEARTBEAT_INTERVAL_MS / 1000} s: a shorter timeout kills healthy workers`,
    }),
    workerBootTimeoutMs: seconds('workerBootTimeout', take('workerBootTimeout'), 60, {
      min: 1,
      why: 'a worker, or new code, needs time to boot: Node alone takes a good part of a second under load',
    }),
    hookTimeoutMs: seconds('hookTimeout', take('hookTimeout'), 30, {
      min: 0,
      exclusive: true,
      why: 'with 0 every async hook times out',
    }),
    drainGraceMs: seconds('drainGrace', take('drainGrace'), 1),
    keepAliveTimeoutMs,
    headersTimeoutMs,
    requestTimeoutMs,
    longLivedGraceMs: seconds('longLivedGrace', take('longLivedGrace'), 2),
    switchTimeoutMs: seconds('switchTimeout', take('switchTimeout'), 1),
    shutdownDelayMs: seconds('shutdownDelay', take('shutdownDelay'), 0),
    workerMaxMemory: byteSize('workerMaxMemory', take('workerMaxMemory')),
    backlog: integer('backlog', take('backlog'), 1, 65535, 1024),
    logLevel,
    logFormat,
    leakPolicy,
    restartOverflow,
    control,
    metricsUrl,
    metrics: metricsUrl !== undefined || control !== undefined,
    stateFile,
    redirectStdout,
    redirectStderr,
    accessLog: bool('accessLog', take('accessLog')),
    bootCheck: bool('bootCheck', take('bootCheck')),
    healthPath: healthPath(take('healthPath')),
    readyProbe: urlPath('readyProbe', take('readyProbe')),
    readyProbeTimeoutMs: seconds('readyProbeTimeout', take('readyProbeTimeout'), 5, {
      min: 0,
      exclusive: true,
      why: 'the probe needs time to get an answer',
    }),
    envFile: envFile(cli, file, sources),
    tagOutput: bool('tagOutput', take('tagOutput')),
    ...phasedRollout(take, workers),
    configFile: found?.file,
    configSource: found?.source,
    hooks: hooks(file),
    sources,
  };
}

/**
 * The app's arguments: strings, as a command line has them. From the command line they are strings
 * already; a config file could hold anything (`args: "start"`, numbers), said in one line.
 */
