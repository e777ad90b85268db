// What an app can say to nserve, and hear from it, about its connections at a drain. This is public API
// (exported from 'nserve'). The state lives on `globalThis` under `Symbol.for` keys, so that an app that
// imports its own copy of the package (a release's node_modules/nserve) talks to the nserve that runs it.
//
// Three classes of connection (docs/restarts.md, "Long-lived connections"):
// - requests: a drain waits for them (bounded by --shutdown-timeout);
// - long-lived: upgraded connections (WebSocket) and `text/event-stream` responses, or responses marked
//   with `markLongLived`: at a drain the app is told (`onDrain`, `drainSignal`), and whatever is still
//   open after --long-lived-grace is ended by nserve with a clean close (FIN);
// - may finish on old code (`finishOnOldCode`): in cluster mode such a response completes on its old
//   worker while new workers already accept; in single mode it must end before the exec, like a request;
// - long-polls (engine.io's `transport=polling` GETs, or `markLongPoll`): a drain waits for them like
//   requests, but at most --switch-timeout; then they finish on old code (cluster hot restart) or their
//   connection is ended for the client to poll again (single mode, stops).
import type { ServerResponse } from 'node:http';

export interface DrainInfo {
  /** Why this process drains. */
  reason: 'restart' | 'stop' | 'replace';
  /** How long long-lived connections have before nserve ends them itself. */
  graceMs: number;
}

export type DrainListener = (info: DrainInfo) => void | Promise<void>;

interface DrainRegistry {
  listeners: Set<DrainListener>;
  controller: AbortController;
  announced: DrainInfo | undefined;
}

const REGISTRY = Symbol.for('nserve.drain');
/** The class a response was marked with (see `connectionClass`). */
export const CLASS = Symbol.for('nserve.connection-class');

export type MarkedClass = 'long-lived' | 'finish-on-old' | 'long-poll';

function registry(): DrainRegistry {
  const g = globalThis as { [REGISTRY]?: DrainRegistry };
  g[REGISTRY] ??= { listeners: new Set(), controller: new AbortController(), announced: undefined };
  return g[REGISTRY];
}

/**
 * Call `fn` when this process starts draining (a restart, a stop, a worker being replaced), while it may
 * still close its long-lived connections its own way: `ws.close(1012, 'service restart')`, socket.io's
 * `io.close()`, a last event on a stream. Registered after the drain began, `fn` runs at once. Returns a
 * function that unregisters it.
 */
export function onDrain(fn: DrainListener): () => void {
  const r = registry();
  if (r.announced !== undefined) {
    void Promise.resolve()
      .then(() => fn(r.announced!))
      .catch(() => {});
    return () => {};
  }
  r.listeners.add(fn);
  return () => r.listeners.delete(fn);
}

/** Aborted when this process starts draining (its `reason` is the DrainInfo). */
export function drainSignal(): AbortSignal {
  return registry().controller.signal;
}

/** Treat this response as a long-lived connection: told to go at a drain, ended after the grace. */
export function markLongLived(res: ServerResponse): void {
  (res as { [CLASS]?: MarkedClass })[CLASS] = 'long-lived';
}

/**
 * Let this response finish where it started: in cluster mode, on its old worker while new workers
 * already serve (a 40-second streamed answer survives a deploy). Bounded by --shutdown-timeout.
 */
export function finishOnOldCode(res: ServerResponse): void {
  (res as { [CLASS]?: MarkedClass })[CLASS] = 'finish-on-old';
}

/**
 * A long-poll: a request held open until there is something to say (socket.io's polling transport is
 * recognised without this). A drain waits for it at most --switch-timeout; then, in a cluster hot
 * restart, it finishes on its old worker while new code already serves; elsewhere its connection is
 * ended (FIN) and the client polls again.
 */
export function markLongPoll(res: ServerResponse): void {
  (res as { [CLASS]?: MarkedClass })[CLASS] = 'long-poll';
}

/** nserve side: tell the app. Once per process; listener errors are the app's, never nserve's. */
export function announceDrain(info: DrainInfo, log: (err: unknown) => void): void {
  const r = registry();
  if (r.announced !== undefined) return;
  r.announced = info;
  for (const fn of r.listeners) {
    try {
      void Promise.resolve(fn(info)).catch(log);
    } catch (err) {
      log(err);
    }
  }
  r.controller.abort(info);
}

/** nserve side: an abandoned restart (single mode) takes the announcement back. */
export function retractDrain(): void {
  const r = registry();
  if (r.announced === undefined) return;
  r.announced = undefined;
  r.controller = new AbortController();
}
