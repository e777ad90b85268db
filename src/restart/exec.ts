// Hot restart, the exec side: the boot check, the one sequence both modes go through before an exec
// (`prepareExec`), and the re-exec of the same command line in the same process (`execSelf`).
//
// prepareExec: boot check → (single mode: drain) → leak candidates → onRestart hooks → leak check →
// exec. Every step can end the restart with the old code still serving; a stop that arrives meanwhile
// (the AbortSignal) cancels it at the next step, and the caller then stops gracefully.
//
// The exec (see handoff.ts for what crosses it): the kept descriptors and stdio have FD_CLOEXEC cleared
// right before execve; SIGUSR1/SIGUSR2/SIGHUP/SIGTTIN/SIGTTOU are ignored across it, so one sent while the
// new image starts is dropped instead of killing the process (bin/nserve.js catches them once JS runs).
import { spawn } from 'node:child_process';
import type { Config } from '../config.js';
import { errorMessage, type NserveErrorCode } from '../errors.js';
import { checkLeaks, type LeakCheck, leakCandidates } from '../fds.js';
import { runHooks } from '../hooks.js';
import type { Logger } from '../logger.js';
import * as native from '../native.js';
import { IGNORED_ACROSS_EXEC } from '../signals.js';
import {
  type BootCheckWhat,
  CHILD_ENV,
  CONSUMED_ENV,
  encodeHandoff,
  HANDOFF_ENV,
  type Handoff,
} from './handoff.js';

export interface RestartInfo {
  /** How many hot restarts this PID has been through. */
  count: number;
  /** When the restart that produced this image was requested (epoch ms), if any. */
  requestedAt: number | undefined;
}

/**
 * The command line this process was started with, to be run again (a worker, a boot check, the image a
 * hot restart execs), with SIGUSR1 made harmless during the new process's start-up: before nserve's own
 * handler is installed, SIGUSR1 (our phased-restart signal) makes Node open its inspector on
 * 127.0.0.1:9229 for the life of the process, and anyone on the machine could then run code as us.
 */
export function ownCommandLine(): { file: string; args: string[] } {
  return {
    file: process.execPath,
    args: [...withoutSigusr1Inspector(process.execArgv), ...process.argv.slice(1)],
  };
}

/** An address no host has (TEST-NET-1): an inspector started on it fails to bind and nothing listens. */
export const UNBINDABLE_INSPECTOR = '--inspect-port=192.0.2.1:9229';

/**
 * Node ≥ 22.14 (and ≥ 23.7) has `--disable-sigusr1`. Older Node (20) opens the inspector on SIGUSR1 at
 * the configured inspector address, so it is pointed at an address that cannot be bound: SIGUSR1 then
 * logs "Starting inspector on 192.0.2.1:9229 failed" and nothing listens. Left alone when the user asked
 * for an inspector (`--inspect*` in execArgv).
 */
export function withoutSigusr1Inspector(
  execArgv: readonly string[],
  version = process.versions.node,
): string[] {
  const args = execArgv.filter((a) => a !== UNBINDABLE_INSPECTOR && a !== '--disable-sigusr1');
  if (args.some((a) => a.startsWith('--inspect') || a.startsWith('--debug'))) return args;
  const [major = 0, minor = 0] = version.split('.').map(Number);
  const hasFlag = major > 23 || (major === 23 && minor >= 7) || (major === 22 && minor >= 14);
  return [hasFlag ? '--disable-sigusr1' : UNBINDABLE_INSPECTOR, ...args];
}

export type BootCheckResult =
  | { ok: true; file: string; ms: number }
  | { ok: false; error: string; ms: number };

/**
 * Start a short-lived copy of ourselves that reads the config and resolves the directory and the app
 * file (`what: 'config'`), or also loads the app (`'app'`), without binding or serving anything, and
 * reports whether that worked. The result is only reported once the child has exited (and libuv has
 * reaped it): an exec right after must not leave a zombie behind.
 */
export function bootCheck(
  timeoutMs: number,
  log: Logger,
  what: BootCheckWhat,
  cwd: string,
  signal?: AbortSignal,
): Promise<BootCheckResult> {
  const started = Date.now();
  const { file, args } = ownCommandLine();
  return new Promise<BootCheckResult>((resolve) => {
    const child = spawn(file, args, {
      env: { ...process.env, [CHILD_ENV.bootCheck]: what },
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      cwd,
    });
    let settled = false;
    const finish = (result: BootCheckResult): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      if (child.exitCode !== null || child.signalCode !== null) {
        resolve(result);
        return;
      }
      // libuv reaps the child when it reports the exit; resolve only then.
      child.once('exit', () => resolve(result));
      child.kill('SIGKILL');
    };
    const timer = setTimeout(
      () =>
        finish({
          ok: false,
          error: `the new code did not boot within ${timeoutMs} ms (ERR_NSERVE_BOOT_TIMEOUT)`,
          ms: Date.now() - started,
        }),
      timeoutMs,
    );
    // A stop during the restart: don't wait for the new code to finish booting.
    const onAbort = (): void =>
      finish({ ok: false, error: 'stopped during the restart', ms: Date.now() - started });
    signal?.addEventListener('abort', onAbort, { once: true });
    child.on('message', (msg: { ok?: boolean; file?: string; error?: string }) => {
      if (msg.ok === true) finish({ ok: true, file: msg.file ?? '', ms: Date.now() - started });
      else finish({ ok: false, error: msg.error ?? 'unknown error', ms: Date.now() - started });
    });
    child.on('error', (err) => finish({ ok: false, error: errorMessage(err), ms: Date.now() - started }));
    child.on('exit', (code, signal) =>
      finish({
        ok: false,
        error: `boot check exited early (${signal ?? `code ${code}`})`,
        ms: Date.now() - started,
      }),
    );
    log.debug({ pid: child.pid }, 'boot check started');
  });
}

export interface ExecOptions {
  /** Descriptors that must survive the exec (listeners, worker channels). Everything else stays close-on-exec. */
  keepFds: readonly number[];
  /** What the new image is handed (the return path and the restart count are filled in here). */
  handoff: Omit<Handoff, 'v' | 'back' | 'restart'>;
  restart: RestartInfo;
  /** When the restart being carried out was requested (epoch ms). */
  requestedAt: number;
  log: Logger;
  /**
   * The directory the server was started in. Single mode runs in the app's directory; the command line
   * (relative APP, --directory, -C, a config file found in the cwd) must be read again from where it
   * was first given, so the exec happens there.
   */
  cwd: string;
}

/**
 * Replace this process image with a fresh run of the same command line. Only returns (by throwing) when
 * the exec failed; the caller then resumes serving. Descriptor state is restored before the throw.
 */
export function execSelf(options: ExecOptions): never {
  const { file, args } = ownCommandLine();
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined) env[k] = v;
  for (const k of [...CONSUMED_ENV, CHILD_ENV.bootCheck]) delete env[k];
  Object.assign(
    env,
    encodeHandoff({
      ...options.handoff,
      back: { file, args, cwd: options.cwd, fds: [...options.keepFds] },
      restart: { count: options.restart.count + 1, requestedAt: options.requestedAt },
    }),
  );
  options.log.info({ keepFds: options.keepFds, restart: options.restart.count + 1 }, 'hot restart: exec');
  options.log.flush?.();
  const stdioState = [0, 1, 2].map((fd) => safeCloexec(fd));
  for (const fd of [0, 1, 2]) clearStdioFlags(fd);
  for (const fd of options.keepFds) native.setCloexec(fd, false);
  const runningIn = process.cwd();
  try {
    process.chdir(options.cwd);
    return native.execve(
      file,
      [file, ...args],
      Object.entries(env).map(([k, v]) => `${k}=${v}`),
      { ignoreSignals: IGNORED_ACROSS_EXEC },
    );
  } catch (err) {
    process.chdir(runningIn);
    for (const fd of options.keepFds) native.setCloexec(fd, true);
    stdioState.forEach((was, fd) => {
      if (was !== undefined) native.setCloexec(fd, was);
    });
    throw err;
  }
}

function safeCloexec(fd: number): boolean | undefined {
  try {
    return native.getCloexec(fd);
  } catch {
    return undefined;
  }
}

/** Exec back into the image that handed over (see handoff.ts), saying why. Never returns on success. */
export function execBack(
  back: { file: string; args: string[]; cwd: string; fds: readonly number[] },
  reason: string,
  env: NodeJS.ProcessEnv,
): never {
  const vars: string[] = [];
  for (const [k, v] of Object.entries({ ...env, [HANDOFF_ENV.rejected]: reason }))
    if (v !== undefined) vars.push(`${k}=${v}`);
  for (const fd of [0, 1, 2]) clearStdioFlags(fd);
  for (const fd of back.fds) native.setCloexec(fd, false);
  process.chdir(back.cwd);
  return native.execve(back.file, [back.file, ...back.args], vars, { ignoreSignals: IGNORED_ACROSS_EXEC });
}

function clearStdioFlags(fd: number): void {
  try {
    native.setCloexec(fd, false);
    native.setNonblock(fd, false);
  } catch {
    // stdio closed: nothing to hand on
  }
}

// ── the sequence before an exec, shared by single and cluster mode ────────────────────────────────────

/** The operating system as prepareExec sees it: real by default, faked in unit tests. */
export interface RestartOps {
  bootCheck(what: BootCheckWhat, signal: AbortSignal): Promise<BootCheckResult>;
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
  /** What else crosses the exec: the metrics listener and counter totals (metrics/plane.ts). */
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
    bootCheck: (what, signal) => bootCheck(config.workerBootTimeoutMs, log, what, ctx.launchCwd, signal),
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
  /** After a passing boot check (single mode drains its connections here). */
  afterCheck?: (check: BootCheckResult & { ok: true }) => Promise<void>;
  /** The descriptors that must survive the exec (asked once the boot check passed). */
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
    log.info('hot restart cancelled by a stop');
    return;
  }
  const what = a.code === 'ERR_NSERVE_FD_LEAK' ? 'refused (leakPolicy refuse)' : 'abandoned';
  log.error(
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
    plan.check === 'none' ? { ok: true, file: '', ms: 0 } : await ops.bootCheck(plan.check, plan.signal);
  if (plan.signal.aborted) return stopped();
  if (!check.ok) return { code: 'ERR_NSERVE_BOOT_CHECK', reason: check.error, stopped: false };
  await plan.afterCheck?.(check);
  await plan.before?.();
  if (plan.signal.aborted) return stopped();
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
  try {
    return ops.exec({
      keepFds: [...keepFds, ...carried],
      handoff: {
        ...plan.handoff(ctx.config.leakPolicy === 'warn' ? leaks.leaks : []),
        ...(ctx.metrics === undefined ? {} : { metrics: ctx.metrics.handoff() }),
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
