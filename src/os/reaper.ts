// Exits of children this image did not spawn. A hot restart's execve keeps the PID, so the workers stay
// our children, but the new image's libuv does not know them: nothing reports their exit, and each
// becomes a zombie. Their channel closing is no sign of death (a child the app spawned may hold a copy
// of it, keeping it open after the worker died), so they are watched by PID: on every SIGCHLD, and on a
// slow timer in case a SIGCHLD came before anyone listened, each watched PID is reaped with
// waitpid(pid, WNOHANG). Never waitpid(-1): it would steal the exits of libuv's own children.
import type { ExitStatus } from '../native/index.js';
import * as native from '../native/index.js';

/** The fallback poll: a SIGCHLD is what normally reports a death, within milliseconds. */
const POLL_MS = 1000;

/** `status` undefined: the PID is no longer our child to reap (someone else reaped it). */
type OnExit = (status: ExitStatus | undefined) => void;

const watched = new Map<number, OnExit>();
let poll: NodeJS.Timeout | undefined;

/**
 * Call `onExit` once `pid`, a child of this process that libuv did not spawn, has exited (it is reaped
 * then). The first look is on the next turn of the loop, so that `onExit` never runs inside this call:
 * a child that died before it was watched is still seen. Returns a function that stops watching.
 */
export function watchExit(pid: number, onExit: OnExit): () => void {
  if (watched.size === 0) {
    process.on('SIGCHLD', reapWatched);
    poll = setInterval(reapWatched, POLL_MS).unref();
  }
  watched.set(pid, onExit);
  setImmediate(() => reapOne(pid));
  return () => unwatch(pid);
}

/** Whether `pid` is watched here (the PID 1 orphan reaper leaves those alone: systemd.ts). */
export function isWatched(pid: number): boolean {
  return watched.has(pid);
}

function unwatch(pid: number): void {
  if (!watched.delete(pid) || watched.size > 0) return;
  process.off('SIGCHLD', reapWatched);
  clearInterval(poll);
  poll = undefined;
}

/** SIGCHLD says some child changed state, not which one: look at every watched PID (a few workers). */
function reapWatched(): void {
  for (const pid of [...watched.keys()]) reapOne(pid);
}

function reapOne(pid: number): void {
  const onExit = watched.get(pid);
  if (onExit === undefined) return;
  let status: ExitStatus | null | undefined;
  try {
    status = native.waitpid(pid);
  } catch {
    status = undefined; // ECHILD: reaped by someone else, so gone all the same
  }
  if (status === null) return; // still running (or only stopped: WNOHANG without WUNTRACED)
  unwatch(pid);
  onExit(status);
}
