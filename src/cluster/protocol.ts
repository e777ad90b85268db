// The message vocabulary between the master and its workers. Master and worker share only this file,
// channel.ts, the hand-off names (restart/handoff.ts: the worker's environment), the logger, the errors
// and the addon face. The vocabulary's version is PROTOCOL_VERSION in handoff.ts.

import type { CertInfo, CertVerdict } from '../listen/tls.js';
import { TOTALS_LENGTH, TOTALS_SUM_INDEX } from '../metrics/requests.js';
//
// Transport: one AF_UNIX SOCK_SEQPACKET socketpair per worker, made by the addon. The worker's end is
// its fd 3 (see CHILD_ENV in handoff.ts). Each message is one datagram of JSON; slot descriptors ride along with
// SCM_RIGHTS in the same datagram ('slots'). The channel survives the master's execve (hot restart), so a
// re-exec'ing master does not look dead; a real master death closes it, and the worker exits.
//
// Lifecycle of a worker: spawned → booted (app loaded, not accepting) → accepting (serving the slots it
// was lent) → draining → exited. The master decides when a booted worker receives slots.

export interface SlotRef {
  /** `<bind URI>#<slot index>`: stable across hot restarts. */
  key: string;
}

export type ToWorker =
  /** Serve these slots; their descriptors are attached in the same order. */
  | { t: 'slots'; slots: SlotRef[] }
  /** Stop accepting on these slots (lent slots handed back, or re-spread). */
  | { t: 'release'; keys: string[] }
  /**
   * Tell the app this worker will drain soon (app/drain-api.ts) while it still serves; answer `quiet` once no
   * long-lived connection is open, or after `graceMs` (a cluster hot restart, once new workers booted).
   */
  | { t: 'notice'; graceMs: number }
  /** A stop with --shutdown-delay: keep serving, but the health path answers 503. */
  | { t: 'unready' }
  /**
   * Stop accepting, finish in-flight requests, close keep-alive connections, end long-lived connections
   * still open after `longLivedGraceMs`; say `drained`; finish "finish on old code" responses; exit.
   */
  | { t: 'drain'; longLivedGraceMs: number; reason: 'restart' | 'stop' | 'replace' }
  /**
   * Re-read every ssl:// bind's certificate and key from its files (setSecureContext); answer `certs`
   * with the same id. Only paths are known to both sides: no key material crosses the channel.
   */
  | { t: 'reload-certs'; id: number }
  /** A scrape: answer with this process's metrics (`metrics` chunks with the same id). */
  | { t: 'metrics'; id: number };

export type FromWorker =
  /**
   * The worker read the config and resolved its directory and app file, as a new master image would:
   * a cluster hot restart execs only once its new workers said so (they replace the boot check).
   */
  | { t: 'configured' }
  | { t: 'booted'; file: string; directory: string }
  /** `code`: the error's ERR_NSERVE_* code, if any (an app load failure is bad input: exit 2 at start). */
  | { t: 'boot-error'; error: string; code?: string }
  | { t: 'accepting'; keys: string[] }
  | { t: 'released'; keys: string[] }
  | {
      t: 'heartbeat';
      requests: number;
      inFlight: number;
      eventLoopDelayMs: number;
      rss: number;
      /** Long-lived connections open (WebSockets, event streams). */
      longLived: number;
      /** Connections open (absent from a worker of an nserve that did not report them). */
      connections?: number;
      /** Request totals (metrics/requests.ts), when metrics are on. */
      totals?: number[];
      /**
       * The last report: sent once, after the worker's last response ended and right before it exits.
       * The master counts these totals as those of a process gone (metrics/store.ts). An optional field,
       * not a message of its own, so that a master of the previous protocol takes it as a heartbeat.
       */
      final?: true;
    }
  /** After `notice`: long-lived connections still open (0 unless the grace ran out). */
  | { t: 'quiet'; open: number }
  | { t: 'drained'; forced: number; requests: number; totals?: number[] }
  /**
   * The answer to a `metrics` request: JSON (metrics/json.ts WorkerReply) cut into `parts` chunks, sent
   * in order. Only while the master waits for that id; at most METRICS_MAX_PARTS of METRICS_CHUNK chars.
   */
  | { t: 'metrics'; id: number; part: number; parts: number; text: string }
  /**
   * The worker wants to be replaced (an uncaught exception, or a SIGTERM sent to it directly); it keeps
   * serving until the master has moved its slots (or booted its replacement) and tells it to drain.
   */
  | { t: 'leaving'; reason: string }
  /** A message from the master could not be received whole (descriptors dropped: EMFILE): resend. */
  | { t: 'lost' }
  /** The verdict on `reload-certs` `id`, per ssl:// bind (only ever an answer: unasked, a violation). */
  | { t: 'certs'; id: number; binds: CertVerdict[] };

export const HEARTBEAT_INTERVAL_MS = 1000;

/** Longest free-text field (a reason, an error): longer ones are cut, so a message always fits a datagram. */
export const MAX_TEXT = 4096;

export function clip(text: string): string {
  return text.length <= MAX_TEXT ? text : `${text.slice(0, MAX_TEXT - 1)}…`;
}

const KEY_MAX = 1024;
/** ssl:// binds a worker may report on (a config has at most MAX_SOCKETS_PER_WORKER listening sockets). */
const MAX_BINDS = 64;
const CERT_FIELDS = ['subject', 'issuer', 'serial', 'validFrom', 'validTo', 'fingerprint256'] as const;

function parseCertInfo(v: unknown): CertInfo | undefined {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return undefined;
  const o = v as Record<string, unknown>;
  const out: Partial<Record<(typeof CERT_FIELDS)[number], string>> = {};
  for (const f of CERT_FIELDS) {
    const x = o[f];
    if (typeof x !== 'string' || x.length > MAX_TEXT) return undefined;
    out[f] = x;
  }
  return out as CertInfo;
}

function parseVerdicts(v: unknown): CertVerdict[] | undefined {
  if (!Array.isArray(v) || v.length > MAX_BINDS) return undefined;
  const out: CertVerdict[] = [];
  for (const item of v) {
    if (typeof item !== 'object' || item === null || Array.isArray(item)) return undefined;
    const o = item as Record<string, unknown>;
    if (typeof o.uri !== 'string' || o.uri.length > KEY_MAX || typeof o.ok !== 'boolean') return undefined;
    const verdict: CertVerdict = { uri: o.uri, ok: o.ok };
    if (o.error !== undefined) {
      if (typeof o.error !== 'string' || o.error.length > MAX_TEXT) return undefined;
      verdict.error = o.error;
    }
    if (o.cert !== undefined) {
      const cert = parseCertInfo(o.cert);
      if (cert === undefined) return undefined;
      verdict.cert = cert;
    }
    out.push(verdict);
  }
  return out;
}

/** Characters of a metrics reply per chunk: JSON-escaped in the datagram, still under 64 KiB. */
export const METRICS_CHUNK = 20_000;
/** Chunks of one metrics reply: 320,000 characters at most. */
export const METRICS_MAX_PARTS = 16;
/** Request totals are a short vector (metrics/requests.ts TOTALS_LENGTH). */
const TOTALS_MAX = 64;

/**
 * A report (`heartbeat`, `drained`) of the right shape whose figures cannot be true: a counter at 1e308,
 * negative, not an integer, NaN or Infinity (JSON's null). The master drops it and says so (rate-limited,
 * worker-handle.ts) but does not replace the worker for it: a figure is not a protocol break, and a bad
 * one must never reach stats, metrics or the restart decisions that read them.
 */
export interface Implausible {
  t: 'implausible';
  report: 'heartbeat' | 'drained';
  reason: string;
}

/** Connections one process can hold (far above any descriptor limit). */
const MAX_CONNECTIONS = 2 ** 24;
/** An event loop's p99 delay over one heartbeat interval: a day is already a hung process. */
const MAX_DELAY_MS = 86_400_000;

/** Why `v` is not a plausible figure (undefined: it is one). */
function figureProblem(
  v: number | null,
  kind: 'count' | 'connections' | 'ms' | 'seconds',
): string | undefined {
  if (v === null || !Number.isFinite(v)) return 'is not a finite number';
  if (v < 0) return 'is negative';
  if (kind === 'ms' || kind === 'seconds') {
    const max = kind === 'ms' ? MAX_DELAY_MS : Number.MAX_SAFE_INTEGER;
    return v <= max ? undefined : `is above ${max}`;
  }
  if (!Number.isSafeInteger(v)) return 'is not an integer (or above 2^53)';
  return kind === 'connections' && v > MAX_CONNECTIONS ? `is above ${MAX_CONNECTIONS}` : undefined;
}

const HEARTBEAT_FIGURES = {
  requests: 'count',
  inFlight: 'connections',
  eventLoopDelayMs: 'ms',
  rss: 'count',
  longLived: 'connections',
} as const;
const DRAINED_FIGURES = { forced: 'count', requests: 'count' } as const;

/** Why the figures of a well-shaped report are implausible (undefined: all are plausible). */
function implausible(
  m: Record<string, unknown>,
  figures: Readonly<Record<string, 'count' | 'connections' | 'ms' | 'seconds'>>,
): string | undefined {
  const show = (v: unknown): string => JSON.stringify(v)?.slice(0, 40) ?? String(v);
  for (const [k, kind] of Object.entries(figures)) {
    const why = figureProblem(m[k] as number | null, kind);
    if (why !== undefined) return `${k} ${show(m[k])} ${why}`;
  }
  if (m.totals === undefined) return undefined;
  const totals = m.totals as (number | null)[];
  if (totals.length !== TOTALS_LENGTH) return `totals has ${totals.length} entries, not ${TOTALS_LENGTH}`;
  for (const [i, v] of totals.entries()) {
    const why = figureProblem(v, i === TOTALS_SUM_INDEX ? 'seconds' : 'count');
    if (why !== undefined) return `totals[${i}] ${show(v)} ${why}`;
  }
  return undefined;
}

/**
 * A worker's message, checked for shape (the worker runs app code: anything may arrive). Returns the
 * message, a report whose figures are implausible (dropped, not a violation), or why it is not a
 * message. Order and state are checked by the master's worker handle.
 *
 * Long on purpose: one case per message type, each beside its fields, so that a reader checks the whole
 * vocabulary against FromWorker in one place.
 */
export function parseFromWorker(value: unknown): FromWorker | Implausible | string {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'not an object';
  const m = value as Record<string, unknown>;
  const text = (k: string): boolean => typeof m[k] === 'string' && (m[k] as string).length <= MAX_TEXT;
  const count = (k: string): boolean =>
    typeof m[k] === 'number' && Number.isFinite(m[k]) && (m[k] as number) >= 0;
  // A report's figures: the shape is a number (null is JSON's NaN or Infinity); its range is checked
  // apart (implausible), so a bad figure drops the report without condemning the worker.
  const figure = (v: unknown): boolean => typeof v === 'number' || v === null;
  const figures = (keys: readonly string[]): boolean => keys.every((k) => figure(m[k]));
  const totals = (): boolean =>
    m.totals === undefined ||
    (Array.isArray(m.totals) && m.totals.length <= TOTALS_MAX && m.totals.every(figure));
  const withTotals = (): { totals?: number[] } =>
    m.totals === undefined ? {} : { totals: m.totals as number[] };
  const keys = (): boolean =>
    Array.isArray(m.keys) &&
    m.keys.length <= 4096 &&
    m.keys.every((k) => typeof k === 'string' && k.length <= KEY_MAX);
  switch (m.t) {
    case 'configured':
      return { t: 'configured' };
    case 'booted':
      return text('file') && text('directory')
        ? { t: 'booted', file: m.file as string, directory: m.directory as string }
        : 'booted: file and directory must be strings';
    case 'boot-error':
      return text('error') && (m.code === undefined || text('code'))
        ? {
            t: 'boot-error',
            error: m.error as string,
            ...(m.code === undefined ? {} : { code: m.code as string }),
          }
        : 'boot-error: error (and code, if given) must be strings';
    case 'accepting':
    case 'released':
      return keys() ? { t: m.t, keys: m.keys as string[] } : `${m.t}: keys must be an array of slot keys`;
    case 'heartbeat': {
      if (!figures(Object.keys(HEARTBEAT_FIGURES)) || !totals())
        return 'heartbeat: counters must be numbers (and totals an array of numbers)';
      // `connections` came later: optional, so a worker of an older nserve still checks in.
      if (m.connections !== undefined && !figures(['connections']))
        return 'heartbeat: connections must be a number';
      const why =
        implausible(m, HEARTBEAT_FIGURES) ??
        (m.connections === undefined ? undefined : implausible(m, { connections: 'connections' }));
      return why !== undefined
        ? { t: 'implausible', report: 'heartbeat', reason: why }
        : {
            t: 'heartbeat',
            requests: m.requests as number,
            inFlight: m.inFlight as number,
            eventLoopDelayMs: m.eventLoopDelayMs as number,
            rss: m.rss as number,
            longLived: m.longLived as number,
            ...(m.connections === undefined ? {} : { connections: m.connections as number }),
            ...withTotals(),
            ...(m.final === true ? { final: true as const } : {}),
          };
    }
    case 'quiet':
      return count('open')
        ? { t: 'quiet', open: m.open as number }
        : 'quiet: open must be a non-negative number';
    case 'drained': {
      if (!figures(Object.keys(DRAINED_FIGURES)) || !totals())
        return 'drained: forced and requests must be numbers (and totals an array of numbers)';
      // (Dropped, the master waits for the worker's exit instead, which comes right after it.)
      const why = implausible(m, DRAINED_FIGURES);
      return why !== undefined
        ? { t: 'implausible', report: 'drained', reason: why }
        : { t: 'drained', forced: m.forced as number, requests: m.requests as number, ...withTotals() };
    }
    case 'metrics': {
      const int = (k: string): boolean => Number.isSafeInteger(m[k]) && (m[k] as number) >= 0;
      if (!int('id') || !int('part') || !int('parts')) return 'metrics: id, part and parts must be integers';
      const part = m.part as number;
      const parts = m.parts as number;
      if (parts < 1 || parts > METRICS_MAX_PARTS || part >= parts)
        return `metrics: part ${part} of ${parts} (at most ${METRICS_MAX_PARTS} parts)`;
      if (typeof m.text !== 'string' || m.text.length > METRICS_CHUNK)
        return `metrics: text must be a string of at most ${METRICS_CHUNK} characters`;
      return { t: 'metrics', id: m.id as number, part, parts, text: m.text };
    }
    case 'leaving':
      return text('reason')
        ? { t: 'leaving', reason: m.reason as string }
        : 'leaving: reason must be a string';
    case 'lost':
      return { t: 'lost' };
    case 'certs': {
      const binds = parseVerdicts(m.binds);
      return Number.isSafeInteger(m.id) && count('id') && binds !== undefined
        ? { t: 'certs', id: m.id as number, binds }
        : 'certs: id must be a non-negative integer and binds an array of verdicts';
    }
    default:
      return `unknown message type ${JSON.stringify(m.t)?.slice(0, 40)}`;
  }
}
