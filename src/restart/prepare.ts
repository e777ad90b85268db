// The sequence before an exec, shared by single and cluster mode (`prepareExec`): boot check → (single
// mode: drain) → leak candidates → onRestart hooks → leak check → exec. Every step can end the restart with
// the old code still serving; a stop that arrives meanwhile (the AbortSignal) cancels it at the next step.
// The OS is reached through `RestartOps`, so the decisions are unit-tested with a fake.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { runHooks } from '../app/hooks.js';
import { resolveAppFile } from '../app/index.js';
import { type Config, loadConfig } from '../config/index.js';
import { formatControlUrl } from '../control/api.js';
import { lockProblem, serverFiles } from '../control/lock.js';
import { errorCode, errorMessage, type NserveErrorCode } from '../errors.js';
import type { RunContext } from '../launcher/run-context.js';
import { type Listener, parseBindUri, probeAddress, probeNewBinds } from '../listen/binder.js';
import { logEvent } from '../log/events.js';
import type { Logger } from '../log/logger.js';
import type * as native from '../native/index.js';
import { checkLeaks, type LeakCheck, leakCandidates } from '../os/descriptors.js';
import { type BootCheckResult, bootCheck, type ExecOptions, execSelf, type RestartInfo } from './exec.js';
import type { BootCheckWhat, HandedLock, Handoff } from './handoff.js';

/** The operating system as prepareExec sees it: real by default, faked in unit tests. */
export interface RestartOps {
  /** `directory`: the release to check instead of --directory's (a rollback). */
  bootCheck(what: BootCheckWhat, signal: AbortSignal, directory?: string): Promise<BootCheckResult>;
  leakCandidates(keep: ReadonlySet<number>): native.FdInfo[];
  runRestartHooks(): Promise<void>;
  checkLeaks(before: readonly native.FdInfo[], keep: ReadonlySet<number>): LeakCheck;
  exec(options: ExecOptions): never;
}

export interface ExecContext {
  config: Config;
  log: Logger;
  launchCwd: string;
  restart: RestartInfo;
  /** The lock files held for the server's life (control/lock.ts): carried across every exec. */
  locks?: readonly HandedLock[];
  /** What else crosses the exec: the metrics listener and counter totals (metrics/metrics-plane.ts). */
  metrics?: {
    pause(): Promise<number[]>;
    resume(): void;
    handoff(): NonNullable<Handoff['metrics']>;
    leaksFound(policy: string, n: number): void;
  };
}

export function realRestartOps(ctx: ExecContext): RestartOps {
  const { config, log } = ctx;
  return {
    bootCheck: (what, signal, directory) =>
      bootCheck(config.workerBootTimeoutMs, log, what, ctx.launchCwd, signal, directory),
    leakCandidates,
    runRestartHooks: async () => {
      await runHooks('onRestart', config.hooks.onRestart, {}, config.hookTimeoutMs, log);
    },
    checkLeaks: (before, keep) => checkLeaks(before, keep, config.leakPolicy, log),
    exec: execSelf,
  };
}

export interface ExecPlan {
  /**
   * What the boot check loads: the app (single mode) or only the config; `none` when something else
   * checks (cluster: the new workers, spawned before the exec, report their config read).
   */
  check: BootCheckWhat | 'none';
  /** The release the boot check loads when it is not --directory's (a rollback's pinned release). */
  checkDirectory?: string;
  /** After a passing boot check (single mode drains its connections here). */
  afterCheck?: (check: BootCheckResult & { ok: true }) => Promise<void>;
  /** The descriptors that must survive the exec (asked once the boot check passed, and right before it). */
  keepFds: () => number[];
  /** The hand-off for the new image. */
  handoff: (leaked: LeakCheck['leaks']) => ExecOptions['handoff'];
  /** Awaited once the boot check passed, before anything is listed (cluster: every new worker spawned). */
  before?: () => Promise<void>;
  /** Right before the exec: a reason not to exec after all (cluster: a new worker failed to boot). */
  veto?: () => Abandoned | undefined;
  /** Right before the exec (cluster: stop watching the worker channels). */
  beforeExec?: () => void;
  /** The exec failed: undo beforeExec. */
  execFailed?: () => void;
  requestedAt: number;
  /** Aborted by a stop. */
  signal: AbortSignal;
}

/** Why a restart did not exec; the old code keeps serving (or, when `stopped`, the caller stops). */
export interface Abandoned {
  code: NserveErrorCode;
  reason: string;
  stopped: boolean;
}

/** The log line of an abandoned restart: "hot restart abandoned, old code keeps serving: why". */
export function logAbandoned(log: Logger, a: Abandoned, stillServing: 'old code' | 'old workers'): void {
  if (a.stopped) {
    logEvent(log, 'restart.hot.cancelled', 'hot restart cancelled by a stop');
    return;
  }
  // Refused: the restart never began (a descriptor would leak, the new workers do not fit in memory).
  const refused = a.code === 'ERR_NSERVE_FD_LEAK' || a.code === 'ERR_NSERVE_RESTART_NO_FIT';
  const what =
    a.code === 'ERR_NSERVE_FD_LEAK' ? 'refused (leakPolicy refuse)' : refused ? 'refused' : 'abandoned';
  logEvent(
    log,
    refused ? 'restart.hot.refused' : 'restart.hot.abandoned',
    { code: a.code, error: a.reason },
    `hot restart ${what}, ${stillServing} keep${stillServing === 'old code' ? 's' : ''} serving: ${a.reason}`,
  );
}

/**
 * Run the steps before a hot restart's exec; exec if they all pass (then this never returns). Returns why
 * the restart was abandoned otherwise.
 */
export async function prepareExec(
  ctx: ExecContext,
  plan: ExecPlan,
  ops: RestartOps = realRestartOps(ctx),
): Promise<Abandoned> {
  const stopped = (): Abandoned => ({
    code: 'ERR_NSERVE_EXEC',
    reason: 'stopped during the restart',
    stopped: true,
  });
  const check: BootCheckResult =
    plan.check === 'none'
      ? { ok: true, file: '', ms: 0 }
      : await ops.bootCheck(plan.check, plan.signal, plan.checkDirectory);
  if (plan.signal.aborted) return stopped();
  if (!check.ok) return { code: 'ERR_NSERVE_BOOT_CHECK', reason: check.error, stopped: false };
  await plan.afterCheck?.(check);
  await plan.before?.();
  if (plan.signal.aborted) return stopped();
  // A reason known already (cluster: a new worker failed, the new config cannot serve): no hooks run.
  const early = plan.veto?.();
  if (early !== undefined) return early;
  const keepFds = plan.keepFds();
  const keep = new Set(keepFds);
  const candidates = ops.leakCandidates(keep);
  await ops.runRestartHooks();
  if (plan.signal.aborted) return stopped();
  const leaks = ops.checkLeaks(candidates, keep);
  ctx.metrics?.leaksFound(ctx.config.leakPolicy, leaks.leaks.length);
  if (leaks.refuse) {
    const list = leaks.leaks.map((l) => `${l.fd} (${l.target})`).join(', ');
    return {
      code: 'ERR_NSERVE_FD_LEAK',
      reason: `descriptors would leak into the restarted process: ${list}`,
      stopped: false,
    };
  }
  const vetoed = plan.veto?.();
  if (vetoed !== undefined) return vetoed;
  const carried = (await ctx.metrics?.pause()) ?? []; // scrapes in flight finish; later ones wait
  plan.beforeExec?.();
  // Asked again: a worker that exited since (a previous restart's old worker ending its drain) has closed
  // its channel, whose number must be neither named to the exec (fcntl EBADF) nor handed over.
  const kept = plan.keepFds();
  // The locks cross too: closing them, even for the instant of the exec, would let a second server in.
  const locks = ctx.locks ?? [];
  try {
    return ops.exec({
      keepFds: [...kept, ...carried, ...locks.map((l) => l.fd)],
      handoff: {
        ...plan.handoff(ctx.config.leakPolicy === 'warn' ? leaks.leaks : []),
        ...(ctx.metrics === undefined ? {} : { metrics: ctx.metrics.handoff() }),
        ...(locks.length === 0 ? {} : { locks: [...locks] }),
      },
      restart: ctx.restart,
      requestedAt: plan.requestedAt,
      log: ctx.log,
      cwd: ctx.launchCwd,
    });
  } catch (err) {
    ctx.metrics?.resume();
    plan.execFailed?.();
    return { code: 'ERR_NSERVE_EXEC', reason: `exec failed: ${errorMessage(err)}`, stopped: false };
  }
}

/**
 * What the new image would fail on once exec'd, where a failure finds no old image to come back to (the
 * way back reads the same config and files): checked before the exec, in both modes. The config as the
 * new image would read it now, and its app file (in `pinned` for a rollback); a config file the server
 * was started with that has gone (the new image would start with defaults: other binds, no control
 * server); an env file (--dotenv) it could not read; new binds it could not open; a pidfile or state
 * file it could not write.
 */
export async function newConfigProblem(
  ctx: RunContext,
  pinned: string | undefined,
  listeners: readonly Listener[],
): Promise<string | undefined> {
  try {
    const fresh = await loadConfig(ctx.appArg, ctx.cliOptions, ctx.launchCwd, process.env, { fresh: true });
    if (ctx.config.configFile !== undefined && fresh.configFile === undefined)
      return `the config file ${ctx.config.configFile}, read at start, is gone: restore it (a new image would start with the defaults)`;
    const release = pinned ?? fs.realpathSync(fresh.directory);
    resolveAppFile(fresh.app, release);
    if (fresh.envFile !== undefined)
      (await import('../config/env-file.js')).readEnvFile(fresh.envFile, release);
    probeNewBinds(fresh.binds, listeners);
    // The control server and the metrics listener are bound again by the new image when they moved.
    const control = fresh.control?.auto === false ? formatControlUrl(fresh.control.address) : undefined;
    const current =
      ctx.config.control === undefined ? undefined : formatControlUrl(ctx.config.control.address);
    if (control !== undefined && control !== current) probeAddress(parseBindUri(control));
    if (fresh.metricsUrl !== undefined && fresh.metricsUrl.uri !== ctx.config.metricsUrl?.uri)
      probeAddress(parseBindUri(fresh.metricsUrl.uri));
    for (const target of serverFiles(fresh)) {
      const { flag, file } = target;
      const dir = path.dirname(file); // resolved by the config
      try {
        fs.accessSync(dir, fs.constants.W_OK);
      } catch (err) {
        return `cannot write ${flag} ${file}: ${dir} is gone or not writable (${errorCode(err) ?? errorMessage(err)})`;
      }
      // A --pidfile or --state this server does not hold yet: another server may hold its lock.
      const locked = ctx.locks === undefined ? undefined : lockProblem(target, ctx.locks);
      if (locked !== undefined) return locked;
    }
    return undefined;
  } catch (err) {
    return errorMessage(err);
  }
}
