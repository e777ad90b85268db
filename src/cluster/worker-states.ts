// A worker as the master sees it: its states and their transitions, the stats it reports, the events a
// handle (worker-handle.ts) emits, what spawning or adopting one takes, the rate and timings it is held to,
// and the verdict of a failed boot.
import type { ChildProcess } from 'node:child_process';
import type { Transitions } from '../launcher/lifecycle.js';
import { oomKillEvidence } from '../memory/oom.js';
import type { FromWorker } from './protocol.js';
import type { WorkerHandle } from './worker-handle.js';

/** booting → booted (may be lent slots) → draining (never again) → exited. */
export type WorkerState = 'booting' | 'booted' | 'draining' | 'exited';

export const WORKER_TRANSITIONS: Transitions<WorkerState> = {
  booting: ['booted', 'draining', 'exited'],
  booted: ['draining', 'exited'],
  draining: ['exited'],
  exited: [],
};

export interface WorkerStats {
  requests: number;
  inFlight: number;
  eventLoopDelayMs: number;
  rss: number;
  longLived: number;
  /** Open connections (0 from a worker whose nserve does not report them). */
  connections: number;
}

export type WorkerEvent =
  | FromWorker
  | { t: 'exit'; code: number | null; signal: string | null }
  /** The worker broke the protocol (garbage, wrong order, a flood): it is no longer trusted. */
  | { t: 'violation'; reason: string };

export interface WorkerSpec {
  index: number;
  generation: number;
  pid: number;
  channelFd: number;
  directory: string;
  /** libuv's child (spawned by this image), or undefined for a worker adopted across a hot restart. */
  child: ChildProcess | undefined;
  /** A worker adopted from the previous master image: booted, serving these slots (or draining). */
  adopted?: { keys: readonly string[]; offered: readonly string[]; draining: boolean; booted: boolean };
}

/** Implausible reports (protocol.ts) are logged at most once per this, with how many were dropped. */
export const IMPLAUSIBLE_LOG_EVERY_MS = 60_000;

/**
 * A worker's channel closes as it exits, a moment before its exit is reported. One still running this
 * long after its channel closed has lost it (its app closed the descriptor): it can no longer be told to
 * drain, so it is killed, and replaced as a crash.
 */
export const CHANNEL_LOST_GRACE_MS = 2000;

/** Messages a worker may send in a burst, and per second after it (heartbeats come once a second). */
const BURST = 400;
export const MESSAGES_PER_SECOND = 100;

/** A token bucket over one worker's messages: `take()` is false once it sends more than the rate allows. */
export class MessageRate {
  private tokens = BURST;
  private refilledAt = Date.now();

  take(): boolean {
    const now = Date.now();
    this.tokens = Math.min(BURST, this.tokens + ((now - this.refilledAt) / 1000) * MESSAGES_PER_SECOND);
    this.refilledAt = now;
    return --this.tokens >= 0;
  }
}

/** Why a worker that never booted is gone: the sentence of a failed boot's verdict. */
export function bootExitReason(
  w: WorkerHandle,
  exit: { code: number | null; signal: string | null },
): string {
  if (w.oomKill?.oom === true)
    return `worker ${w.index} was killed by the OOM killer while booting (${oomKillEvidence(w.oomKill)})`;
  return `worker ${w.index} exited while booting (${exit.signal ?? `code ${exit.code}`})`;
}
