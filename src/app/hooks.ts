import type { HookContext, HookFn, HookName } from '../config/index.js';
import { logEvent } from '../log/events.js';
import type { Logger } from '../log/logger.js';

/**
 * Run the user's hooks one after the other, each bounded by `timeoutMs`. A hook that throws or times out
 * is logged and the next one runs: a broken hook must not block a restart or a shutdown.
 */
export async function runHooks(
  name: HookName,
  fns: readonly HookFn[],
  context: Omit<HookContext, 'hook'>,
  timeoutMs: number,
  log: Logger,
): Promise<{ failed: number }> {
  let failed = 0;
  for (const [index, fn] of fns.entries()) {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), timeoutMs);
    });
    try {
      const outcome = await Promise.race([
        Promise.resolve().then(() => fn({ hook: name, ...context })),
        timeout,
      ]);
      if (outcome === 'timeout') {
        failed++;
        logEvent(
          log,
          'hook.timed-out',
          { hook: name, index, code: 'ERR_NSERVE_HOOK_TIMEOUT', timeoutMs },
          `${name} hook #${index} timed out`,
        );
      }
    } catch (err) {
      failed++;
      logEvent(log, 'hook.failed', { hook: name, index, err }, `${name} hook #${index} threw; continuing`);
    } finally {
      clearTimeout(timer);
    }
  }
  return { failed };
}
