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
  /** Stop accepting, finish in-flight requests, close keep-alive connections, exit. */
  | { t: 'drain' };

export type FromWorker =
  | { t: 'booted'; file: string; directory: string }
  | { t: 'boot-error'; error: string }
  | { t: 'accepting'; keys: string[] }
  | { t: 'released'; keys: string[] }
  | { t: 'heartbeat'; requests: number; inFlight: number; eventLoopDelayMs: number; rss: number }
  | { t: 'drained'; forced: number; requests: number }
  /**
   * The worker wants to be replaced (an uncaught exception, or a SIGTERM sent to it directly); it keeps
   * serving until the master has moved its slots (or booted its replacement) and tells it to drain.
   */
  | { t: 'leaving'; reason: string };

export const HEARTBEAT_INTERVAL_MS = 1000;
