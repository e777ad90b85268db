// What `nserve ctl` reads from a control server is checked for the shape it prints before it is printed:
// a server that answers with something else (another version, a bug, a proxy in between) gets one line
// naming what is missing, never a TypeError and its stack.

import type { Stats } from '../control/status.js';
import type { CertReload } from '../listen/tls.js';
import type { ProcessFds } from '../os/descriptors.js';
import { CtlFailure, EXIT_USAGE } from './ctl-failure.js';

/** A field's expected type: a JSON type name, alternatives joined by `|`, or a nested shape. */
type Spec = string | Shape | { each: Spec };
interface Shape {
  [field: string]: Spec;
}

function typeOf(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  return typeof v;
}

/** The first field of `value` that does not match `spec` (a path and what it is), or undefined. */
function mismatch(value: unknown, spec: Spec, at: string): string | undefined {
  if (typeof spec === 'string') {
    const t = typeOf(value);
    return spec.split('|').includes(t) ? undefined : `${at || 'the answer'} is ${t}, expected ${spec}`;
  }
  if ('each' in spec) {
    // (no Shape here has a field named `each`)
    const each = spec.each as Spec;
    if (!Array.isArray(value)) return `${at || 'the answer'} is ${typeOf(value)}, expected array`;
    for (let i = 0; i < value.length; i++) {
      const bad = mismatch(value[i], each, `${at}[${i}]`);
      if (bad !== undefined) return bad;
    }
    return undefined;
  }
  if (typeOf(value) !== 'object') return `${at || 'the answer'} is ${typeOf(value)}, expected object`;
  const obj = value as Record<string, unknown>;
  for (const [field, sub] of Object.entries(spec as Shape)) {
    const bad = mismatch(obj[field], sub, at === '' ? field : `${at}.${field}`);
    if (bad !== undefined) return bad;
  }
  return undefined;
}

const RELEASE: Shape = { directory: 'string', version: 'string|null' };
const OPTIONAL_RELEASE = 'undefined|null|object';

/** The fields of /stats that status, stats and --wait read. */
const STATS: Shape = {
  version: 'string',
  mode: 'string',
  pid: 'number',
  startedAt: 'string',
  phase: 'number',
  state: 'string',
  requests: 'number',
  inFlight: 'number',
  lifetime: {
    requests: 'number',
    workerCrashes: 'number',
    restarts: { hot: 'number', phased: 'number' },
  },
  directory: 'string',
  workers: {
    each: {
      index: 'number',
      pid: 'number',
      phase: 'number',
      state: 'string',
      booted: 'boolean',
      startedAt: 'string|null',
      lastCheckin: 'string',
      requests: 'number',
      inFlight: 'number',
      eventLoopDelayP99Ms: 'number|null',
      rss: 'number|null',
      crashes: 'number',
      directory: 'string',
      slots: 'array',
    },
  },
  restarts: {
    each: {
      id: 'number',
      kind: 'string',
      started: 'string',
      finished: 'string|null',
      outcome: 'string',
      error: 'string|null',
      release: OPTIONAL_RELEASE,
      previous: OPTIONAL_RELEASE,
    },
  },
  listeners: { each: { address: 'string' } },
  fdCount: 'number',
  release: OPTIONAL_RELEASE,
  rollbackTo: OPTIONAL_RELEASE,
  mixedVersions: 'undefined|null|object',
  noWayBack: 'undefined|null|object',
};

const FDS: Spec = {
  each: {
    pid: 'number',
    role: 'string',
    index: 'undefined|number',
    count: 'number',
    history: 'undefined|array',
    fds: {
      each: { fd: 'number', role: 'string', kind: 'string', cloexec: 'boolean', target: 'string' },
    },
  },
};

const CERT_RELOAD: Shape = {
  id: 'number',
  ok: 'boolean',
  binds: { each: { uri: 'string', ok: 'boolean' } },
  workers: { each: { index: 'number', pid: 'number', ok: 'boolean' } },
};

function checked<T>(
  what: string,
  url: string,
  value: unknown,
  spec: Spec,
  extra?: () => string | undefined,
): T {
  const bad = mismatch(value, spec, '') ?? extra?.();
  if (bad !== undefined)
    throw new CtlFailure(
      `${url} answered ${what} in a shape this nserve ctl cannot read: ${bad}`,
      EXIT_USAGE,
    );
  return value as T;
}

/** Releases inside stats: each must have a directory (printed) and a version (string or null). */
function releasesOf(s: Record<string, unknown>): string | undefined {
  const restarts = s.restarts as Record<string, unknown>[];
  const refs: [string, unknown][] = [
    ['release', s.release],
    ['rollbackTo', s.rollbackTo],
    ...restarts.flatMap((r, i): [string, unknown][] => [
      [`restarts[${i}].release`, r.release],
      [`restarts[${i}].previous`, r.previous],
    ]),
  ];
  for (const [at, ref] of refs) {
    if (ref === undefined || ref === null) continue;
    const bad = mismatch(ref, RELEASE, at);
    if (bad !== undefined) return bad;
  }
  const mixed = s.mixedVersions;
  if (mixed !== undefined && mixed !== null) {
    const bad = mismatch(mixed, { message: 'string' }, 'mixedVersions');
    if (bad !== undefined) return bad;
  }
  const held = s.noWayBack;
  if (held !== undefined && held !== null) return mismatch(held, { message: 'string' }, 'noWayBack');
  return undefined;
}

export function asStats(url: string, value: unknown): Stats {
  return checked<Stats>('GET /stats', url, value, STATS, () => releasesOf(value as Record<string, unknown>));
}

export function asFds(url: string, value: unknown): ProcessFds[] {
  return checked<ProcessFds[]>('GET /fds', url, value, FDS);
}

export function asCertReload(url: string, value: unknown): CertReload {
  return checked<CertReload>('POST /reload-certs', url, value, CERT_RELOAD);
}
