// The cluster's part of a stop (the launcher runs the rest: launcher/index.ts): a graceful stop closes the
// master's copies of the slots and lets every worker drain; a halt kills them.
import { HELD_LISTENERS_MAX_MS } from '../app/stop-signals.js';
import { closeListeners, removeSocketFiles } from '../listen/binder.js';
import { logEvent } from '../log/events.js';
import type { Master } from './master.js';

export async function stopWorkers(
  m: Master,
  how: 'stop' | 'halt',
): Promise<{ requests?: number | undefined }> {
  if (how === 'halt') {
    logEvent(m.log, 'stop.halt', 'halt: killing workers without draining');
    m.pool.killAll();
    closeListeners(m.listeners, { unlink: true });
    // A halt kills the workers: their last reports never come, and no total is claimed.
    return {};
  }
  logEvent(m.log, 'stop.draining', { reason: how }, 'graceful stop: draining workers');
  // The workers' copies of the slots are then the last: each closes its own once its accept queue
  // is empty, so queued connections are served and later ones refused, never reset.
  closeListeners(m.listeners, { unlink: false });
  // A worker's budget: its drain, its hooks, then the app's own stop listeners (held until then, up to
  // HELD_LISTENERS_MAX_MS: app/stop-signals.ts), and a margin for its last report.
  await m.pool.stopAll(
    m.config.shutdownTimeoutMs +
      m.config.hookTimeoutMs +
      Math.min(m.config.hookTimeoutMs, HELD_LISTENERS_MAX_MS) +
      2000,
  );
  removeSocketFiles(m.listeners);
  // Every worker has exited (or was killed past the timeout) and its channel was read to the end: the
  // requests answered over the server's life, each worker's last report included.
  return { requests: m.ctx.metrics?.store.answered() };
}
