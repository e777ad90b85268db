// The master's control face: what each control action (signal, `nserve ctl`, control API) does in
// cluster mode, once the launcher allowed it (launcher/refusals.ts: a stop or a restart in progress).

import type { ActionOptions, ControlAnswer } from '../control/status.js';
import { describeRelease } from '../deploy/release.js';
import { logRollback, planRollback } from '../deploy/rollback.js';
import { errorMessage } from '../errors.js';
import type { RunnerAction } from '../launcher/index.js';
import { mb } from '../memory/index.js';
import { hotRestart } from './hot-restart.js';
import type { Master } from './master.js';
import { fitNow } from './memory-plan.js';
import { phasedRestart } from './phased-restart.js';
import { resize } from './resize.js';

export function performAction(master: Master, action: RunnerAction, options?: ActionOptions): ControlAnswer {
  if (action === 'reload-worker-directory') {
    try {
      const directory = master.resolveDirectory();
      return { accepted: true, detail: `workers spawned from now on load ${directory}` };
    } catch (err) {
      return { accepted: false, status: 409, reason: errorMessage(err) };
    }
  }
  if (action === 'reload-certs') {
    const started = master.reloadCerts();
    if ('refused' in started) return { accepted: false, status: 409, reason: started.refused };
    master.background(started);
    return { accepted: true, detail: 'every worker re-reads the certificates of the ssl:// binds' };
  }
  if (master.certs.reloading)
    return { accepted: false, status: 409, reason: 'a certificate reload is in progress (a few ms)' };
  const nextRestart = (master.history.records.at(-1)?.id ?? 0) + 1;
  switch (action) {
    case 'phased-restart':
      master.background(phasedRestart(master));
      return { accepted: true, restart: nextRestart };
    case 'restart':
      master.background(hotRestart(master, Date.now()));
      return { accepted: true, restart: nextRestart };
    case 'rollback': {
      const plan = planRollback(master.history, master.config.app, options);
      if ('refused' in plan) return { accepted: false, status: 409, reason: plan.refused };
      logRollback(master.log, plan, master.history.deploys.serving);
      // The restart's new generation loads this release (resolveRelease), not --directory's; endRestart
      // unpins it.
      master.history.deploys.pinned = plan.release.directory;
      master.background(plan.kind === 'phased' ? phasedRestart(master) : hotRestart(master, Date.now()));
      return {
        accepted: true,
        restart: nextRestart,
        detail: `${plan.kind} restart onto ${describeRelease(plan.release)}`,
      };
    }
    case 'workers+1': {
      const from = master.count; // resize() changes it synchronously
      const held = master.history.deploys.noWayBack;
      if (held !== undefined)
        return {
          accepted: false,
          status: 409,
          reason: `a new worker would load ${describeRelease(held.failed)}, whose canary failed: deploy a fixed release first`,
        };
      if (master.config.balance === 'ip-hash' && from + 1 > master.config.slots) {
        // Two workers on one slot would split its clients between them: ip-hash would stop being sticky.
        return {
          accepted: false,
          status: 409,
          reason: `--balance ip-hash needs a slot per worker: ${master.config.slots} slots (raise --slots)`,
        };
      }
      // One more worker beside the serving ones: refused where it does not fit in the memory limit (it
      // would be the OOM killer's first choice, and booted again and again).
      const fit = fitNow(master);
      if (fit.extra < 1)
        return {
          accepted: false,
          status: 409,
          reason: `one more worker does not fit in the memory limit: the headroom is ${mb(fit.headroom)}${fit.perWorker === null ? '' : `, a worker needs ~${mb(fit.perWorker)}`}`,
        };
      master.background(resize(master, from + 1));
      return { accepted: true, detail: `workers: ${from} → ${from + 1}` };
    }
    case 'workers-1': {
      if (master.count <= 1) return { accepted: false, status: 409, reason: 'already at 1 worker' };
      const from = master.count;
      master.background(resize(master, from - 1));
      return { accepted: true, detail: `workers: ${from} → ${from - 1}` };
    }
  }
}
