// Single mode's hot restart: drain this image, then exec the new one in place (same PID, the listening
// sockets kept). Optimistic by default: the new image comes back here if the new code fails to boot
// (restart/guard.ts). With --boot-check (or when the release to load is the one serving, so there is no
// old code on disk to come back to) the new code is booted in a separate process first.
import { realpathOr } from '../deploy/release.js';
import type { Launcher } from '../launcher/index.js';
import type { RunContext } from '../launcher/run-context.js';
import { handedListeners, type Listener } from '../listen/binder.js';
import { logEvent } from '../log/events.js';
import * as native from '../native/index.js';
import { type Abandoned, logAbandoned, newConfigProblem, prepareExec } from '../restart/prepare.js';
import { describeLongLived } from '../server/drain.js';
import type { AppServer } from '../server/index.js';
import type { SingleBoot } from './single.js';

/** `pinned`: a rollback's release, served instead of re-resolving --directory. */
export async function hotRestartSingle(
  ctx: RunContext,
  launcher: Launcher,
  boot: SingleBoot,
  requestedAt: number,
  pinned?: string,
): Promise<void> {
  const { config, log, history } = ctx;
  const signal = launcher.beginRestart('hot restart requested');
  const record = history.begin('hot');
  // The release this restart loads: a rollback's, else --directory re-resolved.
  const target = pinned ?? realpathOr(config.directory);
  history.deploys.target(record, target, pinned !== undefined);
  // An app edited in place (no release layout): the way back would load the same files, so the new code
  // is checked first. An explicit `bootCheck: false` keeps the optimistic exec even then (an app that
  // holds a port or a lock while it loads cannot pass a check that runs beside the old code).
  const inPlace = target === boot.directory && (config.sources.bootCheck ?? 'default') === 'default';
  const optimistic = !config.bootCheck && !inPlace;
  logEvent(
    log,
    'restart.hot.started',
    { directory: config.directory, optimistic },
    optimistic
      ? 'hot restart: started'
      : config.bootCheck
        ? 'hot restart: checking that the new code boots'
        : 'hot restart: the directory that serves is the one to load (no other release to come back to): checking that the new code boots',
  );
  const drained = { value: false };
  // What only the new image would find out, after the exec (with no way back): checked now.
  const configProblem = await newConfigProblem(ctx, pinned, boot.listeners);
  const abandoned: Abandoned =
    configProblem !== undefined
      ? { code: 'ERR_NSERVE_BOOT_CHECK', reason: configProblem, stopped: false }
      : await prepareExec(ctx, {
          check: optimistic ? 'none' : 'app',
          ...(pinned === undefined ? {} : { checkDirectory: pinned }),
          afterCheck: (check) => drainForExec(ctx, boot, record, drained, optimistic ? undefined : check),
          keepFds: () => boot.listeners.map((l) => l.fd),
          handoff: (leaked) => ({
            listeners: handedListeners(boot.listeners),
            workers: [],
            generation: 0,
            history: history.toHandoff(),
            totals: history.totalsToHandoff(boot.server.requests),
            startedAt: ctx.startedAt,
            leaked,
            directory: boot.directory,
            configFile: ctx.configFileResolved,
            optimistic,
            releases: history.deploys.toHandoff(),
            ...(pinned === undefined ? {} : { pinned }),
          }),
          requestedAt,
          signal,
        });
  history.finish(record, 'failed', abandoned.reason);
  logAbandoned(log, abandoned, 'old code');
  if (!launcher.restartEnded()) return;
  if (drained.value) {
    boot.server.resume();
    await serveAll(boot.server, boot.listeners);
  }
  launcher.running('hot restart abandoned', `single: hot restart failed: ${abandoned.reason}`);
}

/**
 * Once the new code may be loaded: long-lived connections get their grace while the old code still
 * serves, then the pause begins (stop accepting) and every request ends on the old code before the exec.
 */
async function drainForExec(
  { config, log }: RunContext,
  { server }: SingleBoot,
  record: { pausedAt?: number },
  drained: { value: boolean },
  check: { file: string; ms: number } | undefined,
): Promise<void> {
  server.announce({ reason: 'restart', graceMs: config.longLivedGraceMs });
  await server.waitLongLived(config.longLivedGraceMs);
  if (check === undefined) logEvent(log, 'restart.hot.draining', 'hot restart: draining');
  else
    logEvent(
      log,
      'restart.hot.draining',
      { app: check.file, bootMs: check.ms },
      'hot restart: new code boots; draining',
    );
  server.stopAccepting();
  record.pausedAt = Date.now();
  drained.value = true;
  // In single mode nothing may finish on old code: those responses end before the exec too.
  const { forced, ...longLived } = await server.drain(config.shutdownTimeoutMs, 0, 'restart', {
    afterMs: config.switchTimeoutMs,
    after: 'end',
  });
  const cut = await server.finishOnOld(config.shutdownTimeoutMs);
  if (longLived.asked > 0 || longLived.longPolls > 0 || cut > 0)
    logEvent(log, 'drain.done', { longLived, cut }, `drained: ${describeLongLived(longLived)}`);
  if (forced > 0)
    logEvent(
      log,
      'drain.forced',
      { forced },
      `hot restart: closed ${forced} connection(s) still open at the shutdown timeout`,
    );
}

export async function serveAll(server: AppServer, listeners: readonly Listener[]): Promise<void> {
  for (const l of listeners) await server.serve(`${l.spec.uri}#${l.slot}`, native.dup(l.fd));
}
