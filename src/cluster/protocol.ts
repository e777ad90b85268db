// The message vocabulary between the master and its workers. Master and worker share only this file,
// channel.ts, the hand-off names (restart/handoff.ts: the worker's environment), the logger, the errors
// and the addon face. The vocabulary's version is PROTOCOL_VERSION in handoff.ts.
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
   * Tell the app this worker will drain soon (drain.ts) while it still serves; answer `quiet` once no
   * long-lived connection is open, or after `graceMs` (a cluster hot restart, once new workers booted).
   */
  | { t: 'notice'; graceMs: number }
  /** A stop with --shutdown-delay: keep serving, but the health path answers 503. */
  | { t: 'unready' }
  /**
   * Stop accepting, finish in-flight requests, close keep-alive connections, end long-lived connections
   * still open after `longLivedGraceMs`; say `drained`; finish "finish on old code" responses; exit.
   */
  | { t: 'drain'; longLivedGraceMs: number; reason: 'restart' | 'stop' | 'replace' };

export type FromWorker =
  /**
   * The worker read the config and resolved its directory and app file, as a new master image would:
   * a cluster hot restart execs only once its new workers said so (they replace the boot check).
   */
  | { t: 'configured' }
  | { t: 'booted'; file: string; directory: string }
  | { t: 'boot-error'; error: string }
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
    }
  /** After `notice`: long-lived connections still open (0 unless the grace ran out). */
  | { t: 'quiet'; open: number }
  | { t: 'drained'; forced: number; requests: number }
  /**
   * The worker wants to be replaced (an uncaught exception, or a SIGTERM sent to it directly); it keeps
   * serving until the master has moved its slots (or booted its replacement) and tells it to drain.
   */
  | { t: 'leaving'; reason: string }
  /** A message from the master could not be received whole (descriptors dropped: EMFILE): resend. */
  | { t: 'lost' };

export const HEARTBEAT_INTERVAL_MS = 1000;

/** Longest free-text field (a reason, an error): longer ones are cut, so a message always fits a datagram. */
export const MAX_TEXT = 4096;

export function clip(text: string): string {
  return text.length <= MAX_TEXT ? text : `${text.slice(0, MAX_TEXT - 1)}…`;
}

const KEY_MAX = 1024;

/**
 * A worker's message, checked for shape (the worker runs app code: anything may arrive). Returns the
 * message, or why it is not one. Order and state are checked by the master's worker handle.
 */
export function parseFromWorker(value: unknown): FromWorker | string {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'not an object';
  const m = value as Record<string, unknown>;
  const text = (k: string): boolean => typeof m[k] === 'string' && (m[k] as string).length <= MAX_TEXT;
  const count = (k: string): boolean =>
    typeof m[k] === 'number' && Number.isFinite(m[k]) && (m[k] as number) >= 0;
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
      return text('error')
        ? { t: 'boot-error', error: m.error as string }
        : 'boot-error: error must be a string';
    case 'accepting':
    case 'released':
      return keys() ? { t: m.t, keys: m.keys as string[] } : `${m.t}: keys must be an array of slot keys`;
    case 'heartbeat':
      return count('requests') &&
        count('inFlight') &&
        count('eventLoopDelayMs') &&
        count('rss') &&
        count('longLived')
        ? {
            t: 'heartbeat',
            requests: m.requests as number,
            inFlight: m.inFlight as number,
            eventLoopDelayMs: m.eventLoopDelayMs as number,
            rss: m.rss as number,
            longLived: m.longLived as number,
          }
        : 'heartbeat: counters must be non-negative numbers';
    case 'quiet':
      return count('open')
        ? { t: 'quiet', open: m.open as number }
        : 'quiet: open must be a non-negative number';
    case 'drained':
      return count('forced') && count('requests')
        ? { t: 'drained', forced: m.forced as number, requests: m.requests as number }
        : 'drained: forced and requests must be non-negative numbers';
    case 'leaving':
      return text('reason')
        ? { t: 'leaving', reason: m.reason as string }
        : 'leaving: reason must be a string';
    case 'lost':
      return { t: 'lost' };
    default:
      return `unknown message type ${JSON.stringify(m.t)?.slice(0, 40)}`;
  }
}
