// The configuration as `nserve config --print` shows it.

import { formatControlUrl } from '../control/api.js';
import { CONFIG_ENV } from './file.js';
import { type Config, HOOK_NAMES } from './types.js';
import type { Source } from './values.js';

/** The configuration as `nserve config --print` shows it: values (secrets redacted) and their sources. */
export function describeConfig(
  config: Config,
): Record<string, { value: unknown; source: Source | 'cwd' | 'none' }> {
  const out: Record<string, { value: unknown; source: Source | 'cwd' | 'none' }> = {};
  const source = (key: string): Source => config.sources[key] ?? 'default';
  out.app = { value: config.app, source: source('app') };
  out.args = { value: config.args, source: source('args') };
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
    ['switchTimeoutMs', 'switchTimeout', (v: number) => v / 1000],
    ['shutdownDelayMs', 'shutdownDelay', (v: number) => v / 1000],
    ['workerMaxMemory', 'workerMaxMemory', (v: number | undefined) => v ?? null],
    ['backlog', 'backlog', (v: number) => v],
    ['logLevel', 'logLevel', (v: string) => v],
    ['logFormat', 'logFormat', (v: string | undefined) => v ?? 'auto'],
    ['leakPolicy', 'leakPolicy', (v: string) => v],
    ['restartOverflow', 'restartOverflow', (v: string) => v],
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
    ['canaryMs', 'canary', (v: number | undefined) => (v === undefined ? null : `${v}ms`)],
    ['phaseConcurrency', 'phaseConcurrency', (v: number) => v],
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
