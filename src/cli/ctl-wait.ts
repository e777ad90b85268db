// `nserve ctl … --wait`: following a restart to its verdict (through a hot restart's exec window, while
// the server's process lives) and a stop to the server's exit.
import { setTimeout as sleep } from 'node:timers/promises';
import { formatControlUrl } from '../control/api.js';
import { ControlError, call } from '../control/client.js';
import type { Stats } from '../control/status.js';
import type { RestartRecord } from '../restart/history.js';
import { type Connection, processAlive, refresh } from './ctl-connect.js';
import { CtlFailure, EXIT_FAILED } from './ctl-failure.js';
import { asStats } from './ctl-shape.js';

/** One request never waits longer than this for its answer. */
export const REQUEST_TIMEOUT_MS = 10_000;
/** --wait without a known PID: how long the server may stay unreachable (the exec window) before we give up. */
const UNREACHABLE_GRACE_MS = 15_000;
const POLL_MS = 150;

/**
 * Poll /stats until restart `id` is no longer in progress. The server may be unreachable meanwhile (a hot
 * restart's exec, the new image starting): go on while its process lives.
 */
export async function waitForRestart(
  conn: Extract<Connection, { kind: 'control' }>,
  id: number,
  pid: number | undefined,
  limitMs: number,
): Promise<RestartRecord> {
  const deadline = Date.now() + limitMs;
  let unreachableSince: number | undefined;
  for (;;) {
    let stats: Stats | undefined;
    try {
      stats = asStats(
        formatControlUrl(conn.target.address),
        await call(conn.target, 'GET', '/stats', Math.min(REQUEST_TIMEOUT_MS, limitMs)),
      );
      unreachableSince = undefined;
    } catch (err) {
      if (!(err instanceof ControlError) || err.code !== 'ERR_NSERVE_CONTROL_UNREACHABLE') throw err;
      unreachableSince ??= Date.now();
      if (pid !== undefined && !processAlive(pid)) {
        throw new CtlFailure(
          `the server (pid ${pid}) exited during restart #${id}: see its log`,
          EXIT_FAILED,
        );
      }
      if (pid === undefined && Date.now() - unreachableSince > UNREACHABLE_GRACE_MS) {
        throw new CtlFailure(
          `${err.message} for ${UNREACHABLE_GRACE_MS / 1000} s during restart #${id}`,
          EXIT_FAILED,
        );
      }
      refresh(conn);
    }
    const record = stats?.restarts.find((r) => r.id === id);
    if (record !== undefined && record.outcome !== 'in-progress') return record;
    if (Date.now() > deadline) {
      throw new CtlFailure(
        `restart #${id} still in progress after ${Math.round(limitMs / 1000)} s`,
        EXIT_FAILED,
      );
    }
    await sleep(POLL_MS);
  }
}

export async function waitForExit(pid: number, limitMs: number): Promise<void> {
  const deadline = Date.now() + limitMs;
  while (processAlive(pid)) {
    if (Date.now() > deadline)
      throw new CtlFailure(
        `the server (pid ${pid}) still runs after ${Math.round(limitMs / 1000)} s`,
        EXIT_FAILED,
      );
    await sleep(POLL_MS);
  }
}
