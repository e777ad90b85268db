// The checks and derived values across settings that buildConfig (build.ts) uses: the app's arguments,
// distinct addresses and files, the phased rollout, slots per worker, the balance mode, and the control
// and metrics addresses.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { type ControlConfig, formatControlUrl, resolveControl } from '../control/api.js';
import { usageError } from '../errors.js';
import { BALANCES, type Balance, type BindSpec, parseBindUri } from '../listen/bind-uri.js';
import { readStateFile } from '../os/state-file.js';
import { duration, integer, invalid, type Picked, type Source, settingName, str } from './values.js';

export function appArgs(v: Picked): readonly string[] {
  if (v === undefined) return [];
  if (!Array.isArray(v.value) || !v.value.every((a) => typeof a === 'string'))
    throw invalid('args', v.value, v.source, 'an array of strings, like ["start", "--hostname", "0.0.0.0"]');
  return Object.freeze([...(v.value as string[])]);
}

/**
 * The control server and the metrics listener each need an address of their own: one that is also a bind
 * (or each other's) would fail at bind time as "in use (another server?)", which it is not.
 */
export function distinctAddresses(
  binds: readonly BindSpec[],
  control: ControlConfig | undefined,
  metrics: MetricsAddress | undefined,
  sources: Record<string, Source>,
): void {
  // nserve's IPv6 sockets are IPV6_V6ONLY: [::]:P and 127.0.0.1:P can both be bound.
  type Tcp = { family: 'tcp4' | 'tcp6'; host: string; port: number };
  const wildcard = (h: string): boolean => h === '0.0.0.0' || h === '::';
  const clash = (a: Tcp, b: Tcp): boolean =>
    a.port !== 0 &&
    a.port === b.port &&
    a.family === b.family &&
    (a.host === b.host || wildcard(a.host) || wildcard(b.host));
  const taken: { what: string; tcp?: Tcp; path?: string }[] = binds.map((b) =>
    b.kind === 'tcp'
      ? { what: `the --bind ${b.uri}`, tcp: { family: b.family, host: b.host, port: b.port } }
      : { what: `the --bind ${b.uri}`, path: b.path },
  );
  const check = (key: string, value: string, tcp: Tcp | undefined, file: string | undefined): void => {
    const hit = taken.find(
      (t) =>
        (tcp !== undefined && t.tcp !== undefined && clash(tcp, t.tcp)) ||
        (file !== undefined && t.path === file),
    );
    if (hit !== undefined)
      throw invalid(key, value, sources[key] ?? 'flag', `an address of its own: ${hit.what} is there`);
    taken.push({
      what: `--${key === 'controlUrl' ? 'control-url' : 'metrics-url'} ${value}`,
      tcp,
      path: file,
    });
  };
  if (control !== undefined && !control.auto) {
    const a = control.address;
    const url = formatControlUrl(a);
    if (a.kind === 'tcp')
      check('controlUrl', url, { family: a.family, host: a.host, port: a.port }, undefined);
    else check('controlUrl', url, undefined, a.path);
  }
  if (metrics !== undefined)
    check(
      'metricsUrl',
      metrics.uri,
      { family: metrics.family, host: metrics.host, port: metrics.port },
      undefined,
    );
}

/**
 * The pidfile and the state file are replaced whole and removed at stop: neither may be the other, nor a
 * file nserve redirects output to (the log would be overwritten, then deleted). The same file is the same
 * name once the directory's symlinks are resolved; a symlink at the name itself is replaced, never followed
 * (os/atomic-file.ts), so it does not make two names one. stdout and stderr may share a file.
 */
export function distinctFiles(files: [string, string | undefined][], sources: Record<string, Source>): void {
  const name = (file: string): string => {
    try {
      return path.join(fs.realpathSync(path.dirname(file)), path.basename(file));
    } catch {
      return file;
    }
  };
  const given = files.flatMap(([key, file]) => (file === undefined ? [] : [{ key, file, name: name(file) }]));
  for (const [i, a] of given.entries()) {
    if (a.key !== 'pidfile' && a.key !== 'state') continue;
    for (const b of given.slice(i + 1)) {
      if (a.name !== b.name) continue;
      const what = a.key === 'pidfile' ? 'the pidfile' : 'the state file';
      throw usageError(
        'ERR_NSERVE_INVALID_CONFIG',
        `invalid ${settingName(a.key, sources[a.key] ?? 'flag')} ${a.file}: it is the same file as ${settingName(b.key, sources[b.key] ?? 'flag')} ${b.file}: ${what} must be a file of its own (nserve replaces it, and removes it at stop)`,
      );
    }
  }
}

/** `--canary` and `--phase-concurrency`: how a phased restart rolls out (cluster mode only). */
export function phasedRollout(
  take: (key: 'canary' | 'phaseConcurrency') => Picked,
  workers: number,
): { canaryMs: number | undefined; phaseConcurrency: number } {
  const canary = take('canary');
  const canaryMs = duration('canary', canary);
  const concurrency = take('phaseConcurrency');
  if (workers === 0) {
    // A phased restart needs workers: refusing says so instead of silently ignoring the setting.
    const given = canary ?? concurrency;
    if (given !== undefined) {
      const key = canary !== undefined ? 'canary' : 'phaseConcurrency';
      throw invalid(key, given.value, given.source, 'cluster mode (-w N): single mode has no phased restart');
    }
    return { canaryMs, phaseConcurrency: 1 };
  }
  return { canaryMs, phaseConcurrency: integer('phaseConcurrency', concurrency, 1, workers, 1) };
}

/**
 * Descriptors one channel message can carry (native/addon.ts MAX_FDS, fdpass.cc kMaxFds). The master sends a
 * worker the slots it adds in one message, and while other workers are down (crash, boot) one worker may be
 * lent every slot of every bind: so the listening sockets of all binds together must fit in one message.
 * Past that, the server used to report booted and READY while no worker could take its slots.
 */
export const MAX_SOCKETS_PER_WORKER = 64;

export function slotCount(opt: Picked, binds: readonly BindSpec[], workers: number): number {
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
export function balanceMode(
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

export function metricsAddress(v: Picked): MetricsAddress | undefined {
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

export function controlConfig(
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
