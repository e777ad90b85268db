// systemd integration beyond single notifications: the watchdog, and orphan reaping when nserve is
// PID 1 (in a container).

import { logEvent } from '../log/events.js';
import type { Logger } from '../log/logger.js';
import * as native from '../native/index.js';
import { childProcesses } from './proc.js';
import { isWatched } from './reaper.js';

/**
 * WATCHDOG=1 at half of WATCHDOG_USEC, from this process's event loop: a master whose loop is stuck
 * stops pinging and systemd restarts it.
 */
export function startWatchdog(env: NodeJS.ProcessEnv, log: Logger): void {
  const usec = Number(env.WATCHDOG_USEC ?? 0);
  if (!Number.isFinite(usec) || usec <= 0) return;
  if (env.WATCHDOG_PID !== undefined && Number(env.WATCHDOG_PID) !== process.pid) return;
  const everyMs = Math.max(1, Math.floor(usec / 2000));
  logEvent(log, 'systemd.watchdog.enabled', { everyMs }, 'systemd watchdog enabled');
  native.notify('WATCHDOG=1');
  setInterval(() => native.notify('WATCHDOG=1'), everyMs).unref();
}

/** Variables that describe systemd's relation to this process only: a worker must not act on them. */
export const MAIN_PROCESS_ENV = [
  'NOTIFY_SOCKET',
  'WATCHDOG_USEC',
  'WATCHDOG_PID',
  'LISTEN_PID',
  'LISTEN_FDS',
  'LISTEN_FDNAMES',
];

/**
 * As PID 1, orphans are re-parented to us and become zombies unless we reap them. libuv reaps the
 * children it spawned itself (workers, the boot check, an app's child_process children), and a
 * waitpid(-1) would steal those exits from it. So on SIGCHLD, after a delay in which libuv has long
 * reaped its own, reap by PID only the zombies still left.
 */
export function reapOrphansAsInit(log: Logger): void {
  if (process.pid !== 1) return;
  let scheduled = false;
  process.on('SIGCHLD', () => {
    if (scheduled) return;
    scheduled = true;
    setTimeout(() => {
      scheduled = false;
      // Adopted workers are reaped by their own watch, which reports how they died (reaper.ts).
      for (const pid of zombieChildren().filter((p) => !isWatched(p))) {
        try {
          const status = native.waitpid(pid);
          if (status !== null)
            logEvent(
              log,
              'reaper.orphan.reaped',
              { orphan: pid, code: status.code, signal: status.signal },
              'reaped an orphaned process',
            );
        } catch {
          // libuv got to it first
        }
      }
    }, 1000);
  });
  logEvent(log, 'reaper.enabled', 'running as PID 1: orphaned processes are reaped');
}

function zombieChildren(): number[] {
  return childProcesses(process.pid)
    .filter((p) => p.state === 'Z')
    .map((p) => p.pid);
}
