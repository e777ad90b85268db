// One restart, driven the way an operator does it: point `current` at a release (optional), send the
// signal, wait until the server says how the restart ended. The benchmark (bench/restart.ts) reads the
// same outcome lines.
import type { EventCode } from '../../src/log/events.js';
import { isEvent, type LoggedProcess, type LogLine } from './logged-process.js';
import { switchRelease } from './releases.js';

/** The events that end a successful restart: hot (single mode and cluster), phased. */
export const RESTART_DONE_EVENTS: readonly EventCode[] = ['restart.hot.done', 'restart.phased.done'];
/** The events that end a restart that did not happen (old code keeps serving), or that was not started. */
export const RESTART_FAILED_EVENTS: readonly EventCode[] = [
  'restart.hot.abandoned',
  'restart.hot.refused',
  'restart.hot.crashed',
  'restart.phased.stopped',
  'signal.ignored',
];

function restartDone(l: LogLine): boolean {
  return isEvent(l, ...RESTART_DONE_EVENTS);
}

function restartFailed(l: LogLine): boolean {
  return isEvent(l, ...RESTART_FAILED_EVENTS);
}

export type RestartKind = 'hot' | 'phased';

const SIGNAL: Record<RestartKind, NodeJS.Signals> = { hot: 'SIGUSR2', phased: 'SIGUSR1' };

export interface RestartOptions {
  /** Switch `<root>/current` to `releases/<version>` before the signal. */
  release?: { root: string; version: string };
  /** How long the restart may take, signal to outcome line (default 20 s). */
  deadlineMs?: number;
}

export interface RestartOutcome {
  ok: boolean;
  /** The line that ended the restart. */
  line: LogLine;
  /** Index in srv.lines of the first line logged after the signal. */
  mark: number;
  /** The lines logged from the signal to the outcome, inclusive. */
  lines: LogLine[];
}

/** Signal a restart and wait for its outcome line, whichever it is. */
export async function signalRestart(
  srv: LoggedProcess,
  kind: RestartKind,
  options: RestartOptions = {},
): Promise<RestartOutcome> {
  if (options.release !== undefined) switchRelease(options.release.root, options.release.version);
  const mark = srv.lines.length;
  srv.signal(SIGNAL[kind]);
  const line = await srv.waitForLog(
    `the outcome of the ${kind} restart (${SIGNAL[kind]})`,
    (l) => restartDone(l) || restartFailed(l),
    options.deadlineMs ?? 20_000,
    mark,
  );
  const end = srv.lines.indexOf(line, mark);
  return { ok: restartDone(line), line, mark, lines: srv.lines.slice(mark, end + 1) };
}

/** Signal a restart and wait until it has succeeded; a restart that fails or is refused throws. */
export async function restart(
  srv: LoggedProcess,
  kind: RestartKind,
  options: RestartOptions = {},
): Promise<RestartOutcome> {
  const outcome = await signalRestart(srv, kind, options);
  if (!outcome.ok) {
    const to = options.release === undefined ? '' : ` to ${options.release.version}`;
    throw new Error(`the ${kind} restart${to} did not succeed: ${String(outcome.line.msg)}`);
  }
  return outcome;
}
