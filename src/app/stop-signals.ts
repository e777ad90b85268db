// The app's own SIGTERM and SIGINT listeners wait for nserve's drain.
//
// Stops reach more than the process they are meant for: a terminal's Ctrl-C signals the whole process
// group, systemd's default KillMode=control-group signals every process of the unit, `kill -TERM -PGID`
// every process of the group. Apps install their own listeners for these (Next.js's server calls
// process.exit on either), which would end a worker or a single-mode server with requests in flight.
// So a listener the app adds for SIGTERM or SIGINT is held here, not registered: nserve's own handlers
// alone decide (a worker leaves the stop to its master, single mode drains). Once the drain of a stop is
// done, the held listeners of every stop signal the process received run, in the order they were added,
// and the process exits when they exit it or after a bound.
import { EventEmitter } from 'node:events';

export type StopSignal = 'SIGTERM' | 'SIGINT';
const STOP_SIGNALS: readonly StopSignal[] = ['SIGTERM', 'SIGINT'];

type Listener = (...args: unknown[]) => unknown;
interface Held {
  listener: Listener;
  once: boolean;
}

const held = new Map<StopSignal, Held[]>(STOP_SIGNALS.map((s) => [s, []]));
const received = new Set<StopSignal>();
let installed = false;

function isStopSignal(event: string | symbol): event is StopSignal {
  return event === 'SIGTERM' || event === 'SIGINT';
}

/**
 * nserve's own listener for a signal, registered past the hold (EventEmitter's own method: Node starts
 * watching the signal from its 'newListener' event either way).
 */
export function addOwnSignalListener(signal: NodeJS.Signals, listener: () => void): void {
  EventEmitter.prototype.on.call(process, signal, listener);
}

export function removeOwnSignalListener(signal: NodeJS.Signals, listener: () => void): void {
  EventEmitter.prototype.off.call(process, signal, listener);
}

/** Remember that the process got `signal`, for the held listeners. */
function noteReceived(signal: StopSignal): void {
  EventEmitter.prototype.on.call(process, signal, () => received.add(signal));
}

/**
 * From now on the app's SIGTERM/SIGINT listeners are held (idempotent). Called before the app loads, in
 * every process that runs it (worker, single, portable, the boot check).
 */
export function holdAppStopListeners(): void {
  if (installed) return;
  installed = true;
  for (const s of STOP_SIGNALS) noteReceived(s);
  const proto = EventEmitter.prototype;
  const hold =
    (method: 'on' | 'addListener' | 'prependListener' | 'once' | 'prependOnceListener') =>
    (event: string | symbol, listener: Listener): NodeJS.Process => {
      if (!isStopSignal(event)) return proto[method].call(process, event, listener) as NodeJS.Process;
      const list = held.get(event)!;
      const entry = { listener, once: method === 'once' || method === 'prependOnceListener' };
      if (method.startsWith('prepend')) list.unshift(entry);
      else list.push(entry);
      return process;
    };
  const release =
    (method: 'off' | 'removeListener') =>
    (event: string | symbol, listener: Listener): NodeJS.Process => {
      if (!isStopSignal(event)) return proto[method].call(process, event, listener) as NodeJS.Process;
      const list = held.get(event)!;
      const i = list.findIndex((h) => h.listener === listener);
      if (i !== -1) list.splice(i, 1);
      return process;
    };
  const target = process as unknown as Record<string, unknown>;
  target.on = hold('on');
  target.addListener = hold('addListener');
  target.prependListener = hold('prependListener');
  target.once = hold('once');
  target.prependOnceListener = hold('prependOnceListener');
  target.off = release('off');
  target.removeListener = release('removeListener');
  // removeAllListeners('SIGTERM') would also remove nserve's own handlers: then the next SIGTERM ends
  // the process with no drain. For a stop signal it clears what the app added, held here, only.
  target.removeAllListeners = (event?: string | symbol): NodeJS.Process => {
    if (event !== undefined && isStopSignal(event)) {
      held.get(event)!.length = 0;
      return process;
    }
    if (event === undefined) {
      for (const list of held.values()) list.length = 0;
      // Everything else, as Node would; the stop signals' own listeners (nserve's) stay.
      for (const name of process.eventNames())
        if (!isStopSignal(name)) proto.removeAllListeners.call(process, name);
      return process;
    }
    return proto.removeAllListeners.call(process, event) as NodeJS.Process;
  };
}

/** How many app listeners are held for each stop signal (for the log). */
export function heldStopListeners(): Record<StopSignal, number> {
  return { SIGTERM: held.get('SIGTERM')!.length, SIGINT: held.get('SIGINT')!.length };
}

/** The most an app's held listeners get for their async cleanup before the process exits. */
export const HELD_LISTENERS_MAX_MS = 2000;

/**
 * After the drain of a stop: run the held listeners of each stop signal the process received, in the
 * order they were added, as Node would have. Returns once min(hookTimeoutMs, 2 s) has passed (an app's
 * cleanup, often callback-based, gets that long), at once when nothing was held or received. A
 * listener's process.exit() ends the process there, with the stop's status, 0: the drain already lost
 * nothing (Next.js exits 143 on SIGTERM, which a supervisor would read as a failed stop).
 */
export async function runHeldStopListeners(hookTimeoutMs: number): Promise<number> {
  const boundMs = Math.min(hookTimeoutMs, HELD_LISTENERS_MAX_MS);
  const due: [StopSignal, Held][] = [];
  for (const signal of STOP_SIGNALS) {
    if (received.has(signal)) for (const h of held.get(signal)!.splice(0)) due.push([signal, h]);
  }
  if (due.length === 0) return 0;
  const exit = process.exit;
  process.exit = (() => exit(0)) as typeof process.exit;
  for (const [signal, h] of due) {
    try {
      const result = h.listener(signal);
      // An async listener's rejection is its own: it must not become an unhandled rejection here.
      if (result instanceof Promise) result.catch(() => {});
    } catch {
      // the app's cleanup failed: the stop goes on
    }
  }
  // Bounded: a cleanup that never settles must not keep a stopped server (its listeners closed, its
  // pidfile gone, its lock held) from exiting.
  await new Promise((r) => setTimeout(r, boundMs));
  return due.length;
}
