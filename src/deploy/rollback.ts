// `nserve ctl rollback` / `POST /rollback`, the part both modes share: where a rollback goes (the
// deploy record's previous release, pinned: record.ts) and how (hot or phased), or one line saying why
// it cannot. Single mode (modes/single.ts) and the master (cluster/control.ts) then run an ordinary restart
// with that directory pinned, so a rollback has the same zero-failure machinery and verdicts as any
// restart.
import { resolveAppFile } from '../app/index.js';
import type { ActionOptions } from '../control/status.js';
import { errorMessage } from '../errors.js';
import { logEvent } from '../log/events.js';
import type { Logger } from '../log/logger.js';
import type { RestartHistory, RestartKind } from '../restart/history.js';
import { describeRelease, type ReleaseRef } from './release.js';

export interface RollbackPlan {
  release: ReleaseRef;
  kind: RestartKind;
}

/**
 * The rollback to start now, or why not: nothing to roll back to, or the previous release (or its app
 * file) is gone. The kind is the one asked for, else the last restart's (hot if there was none).
 */
export function planRollback(
  history: RestartHistory,
  app: string,
  options: ActionOptions | undefined,
): RollbackPlan | { refused: string } {
  const target = history.deploys.rollbackTarget();
  if ('refused' in target) return target;
  try {
    resolveAppFile(app, target.release.directory);
  } catch (err) {
    return { refused: `cannot roll back to ${describeRelease(target.release)}: ${errorMessage(err)}` };
  }
  return { release: target.release, kind: options?.kind ?? history.records.at(-1)?.kind ?? 'hot' };
}

export function logRollback(log: Logger, plan: RollbackPlan, from: ReleaseRef | undefined): void {
  logEvent(
    log,
    'deploy.rollback.started',
    { release: plan.release, from: from ?? null, kind: plan.kind },
    `rollback: ${plan.kind} restart onto ${describeRelease(plan.release)}${from === undefined ? '' : `, from ${describeRelease(from)}`}`,
  );
}
