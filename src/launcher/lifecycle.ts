// An explicit state machine: the states a process (or a worker, seen from the master) goes through, the
// transitions allowed between them, and the one function that changes state and logs it.
import { logEvent } from '../log/events.js';
import type { Logger } from '../log/logger.js';

export type Transitions<S extends string> = { readonly [K in S]: readonly S[] };

export class Lifecycle<S extends string> {
  private current: S;

  constructor(
    private readonly what: string,
    initial: S,
    private readonly transitions: Transitions<S>,
    private readonly log: Pick<Logger, 'info' | 'debug'> | undefined,
    private readonly options: { fields?: Record<string, unknown>; level?: 'info' | 'debug' } = {},
  ) {
    this.current = initial;
  }

  get state(): S {
    return this.current;
  }

  is(...states: S[]): boolean {
    return states.includes(this.current);
  }

  can(to: S): boolean {
    return this.transitions[this.current].includes(to);
  }

  /**
   * Move to `to`, logging `{from, to, reason}`. A transition the table does not allow is a bug in nserve:
   * it throws rather than leave the state silently wrong.
   */
  to(to: S, reason: string): void {
    const from = this.current;
    if (from === to) return;
    if (!this.can(to)) throw new Error(`${this.what}: no transition ${from} → ${to} (${reason})`);
    this.current = to;
    if (this.log === undefined) return;
    // A worker's states (seen from the master) are debug detail; the server's are the operator's.
    logEvent(
      this.log,
      this.options.level === 'debug' ? 'worker.state.changed' : 'state.changed',
      { ...this.options.fields, lifecycle: this.what, from, to, reason },
      `${this.what}: ${from} → ${to} (${reason})`,
    );
  }
}

/** Single server and cluster master. */
export type ServerState = 'booting' | 'running' | 'restarting' | 'stopping';

export const SERVER_TRANSITIONS: Transitions<ServerState> = {
  booting: ['running', 'restarting', 'stopping'],
  running: ['restarting', 'stopping'],
  restarting: ['running', 'stopping'],
  stopping: [],
};

/** `work`, unless `signal` aborts first (a stop during a restart): then reject with `reason`. */
export function unlessAborted<T>(
  work: Promise<T>,
  signal: AbortSignal,
  reason = 'the server is stopping',
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    if (signal.aborted) {
      reject(new Error(reason));
      return;
    }
    const onAbort = (): void => reject(new Error(reason));
    signal.addEventListener('abort', onAbort, { once: true });
    work.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(err);
      },
    );
  });
}
