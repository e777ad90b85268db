// Hot restart, the exec side: the boot check, the one sequence both modes go through before an exec
// (`prepareExec`, in prepare.ts), and the re-exec of the same command line in the same process (`execSelf`).
//
// prepareExec: boot check → (single mode: drain) → leak candidates → onRestart hooks → leak check →
// exec. Every step can end the restart with the old code still serving; a stop that arrives meanwhile
// (the AbortSignal) cancels it at the next step, and the caller then stops gracefully.
//
// The exec (see handoff.ts for what crosses it): the kept descriptors and stdio have FD_CLOEXEC cleared
// right before execve; SIGUSR1/SIGUSR2/SIGHUP/SIGTTIN/SIGTTOU are ignored across it and, with
// nserve_signals.so preloaded into the new image (handoff.ts), blocked: one sent while the new image starts
// stays pending until the preloaded recorder is in place, and is logged once nserve's JS runs, instead of
// killing the process (native/early_signals.cc; bin/nserve.js catches them once JS runs).
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import { HELD_ACROSS_EXEC, IGNORED_ACROSS_EXEC } from '../control/signals.js';
import { errorMessage } from '../errors.js';
import { logEvent } from '../log/events.js';
import type { Logger } from '../log/logger.js';
import * as native from '../native/index.js';
import {
  type BootCheckWhat,
  CHILD_ENV,
  CONSUMED_ENV,
  encodeHandoff,
  HANDOFF_ENV,
  type Handoff,
  NSERVE_ARGV,
  PRELOAD_ENV,
  withPreload,
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
    // Not process.argv: the app was given its own (handoff.ts NSERVE_ARGV).
    args: [...withoutSigusr1Inspector(process.execArgv), ...NSERVE_ARGV.slice(1)],
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
  /** Check this release directory instead of --directory's (a rollback). */
  directory?: string,
): Promise<BootCheckResult> {
  const started = Date.now();
  const { file, args } = ownCommandLine();
  return new Promise<BootCheckResult>((resolve) => {
    const child = spawn(file, args, {
      env: {
        ...process.env,
        [CHILD_ENV.bootCheck]: what,
        ...(directory === undefined ? {} : { [CHILD_ENV.bootCheckDirectory]: directory }),
      },
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
    logEvent(log, 'restart.boot-check.started', { pid: child.pid }, 'boot check started');
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
  for (const k of [...CONSUMED_ENV, CHILD_ENV.bootCheck, CHILD_ENV.bootCheckDirectory]) delete env[k];
  Object.assign(
    env,
    encodeHandoff({
      ...options.handoff,
      back: { file, args, cwd: options.cwd, fds: [...options.keepFds] },
      restart: { count: options.restart.count + 1, requestedAt: options.requestedAt },
    }),
  );
  // A stop from now on is recorded and carried across the exec (to be held there by the preloaded
  // recorder), not lost in libuv's handler: only where the recorder will be there to hold it.
  const holding = usablePreload(native.signalPreload) !== undefined;
  if (holding) native.holdSignals(HELD_ACROSS_EXEC);
  try {
    logEvent(
      options.log,
      'restart.hot.exec',
      { keepFds: options.keepFds, restart: options.restart.count + 1 },
      'hot restart: exec',
    );
    options.log.flush?.();
    return execWithDescriptors(options, () => execImage(file, [file, ...args], env));
  } catch (err) {
    // A stop that came meanwhile reaches nserve's handler now.
    if (holding) native.releaseHeldSignals();
    throw err;
  }
}

/** Run `exec` with stdio and the kept descriptors set for the new image; as they were if it throws. */
function execWithDescriptors(options: ExecOptions, exec: () => never): never {
  const stdioState = [0, 1, 2].map((fd) => stdioFlags(fd));
  for (const fd of [0, 1, 2]) clearStdioFlags(fd);
  for (const fd of options.keepFds) native.setCloexec(fd, false);
  const runningIn = process.cwd();
  try {
    process.chdir(options.cwd);
    return exec();
  } catch (err) {
    process.chdir(runningIn);
    for (const fd of options.keepFds) native.setCloexec(fd, true);
    // What Node set on stdio (close-on-exec, and O_NONBLOCK on pipes), as it was.
    stdioState.forEach((was, fd) => {
      if (was === undefined) return;
      native.setCloexec(fd, was.cloexec);
      if (was.nonblock) native.setNonblock(fd, true);
    });
    throw err;
  }
}

/**
 * execve with the restart signals ignored across it, and (when nserve_signals.so is there to record
 * them in the new image) blocked, so that one arriving meanwhile waits for the recorder; the stop
 * signals blocked then too, held until nserve handles them.
 */
function execImage(file: string, argv: string[], env: Record<string, string | undefined>): never {
  const preload = usablePreload(native.signalPreload);
  const vars: Record<string, string | undefined> =
    preload === undefined ? env : { ...env, [PRELOAD_ENV]: withPreload(env[PRELOAD_ENV], preload) };
  const list: string[] = [];
  for (const [k, v] of Object.entries(vars)) if (v !== undefined) list.push(`${k}=${v}`);
  return native.execve(file, argv, list, {
    ignoreSignals: IGNORED_ACROSS_EXEC,
    // SIGTERM and SIGINT too: pending across the exec, held by the recorder until nserve's handlers are in
    // place (native/early_signals.cc), so a stop during a hot restart's exec is a stop, not a crash.
    blockSignals: preload === undefined ? [] : [...IGNORED_ACROSS_EXEC, ...HELD_ACROSS_EXEC],
  });
}

/**
 * The recorder, if the new image can load it: the dynamic loader splits LD_PRELOAD on blanks and colons
 * (an install path with one would preload a fragment, and leave it to the app), and a deploy may have
 * pruned the release it came from since this image started. Without it the restart signals are only
 * ignored across the exec, not blocked: never fatal before Node starts, only during its start-up.
 */
function usablePreload(file: string | undefined): string | undefined {
  return file !== undefined && !/[\s:]/.test(file) && fs.existsSync(file) ? file : undefined;
}

function stdioFlags(fd: number): { cloexec: boolean; nonblock: boolean } | undefined {
  try {
    return { cloexec: native.getCloexec(fd), nonblock: native.getNonblock(fd) };
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
  for (const fd of [0, 1, 2]) clearStdioFlags(fd);
  for (const fd of back.fds) native.setCloexec(fd, false);
  process.chdir(back.cwd);
  return execImage(back.file, [back.file, ...back.args], { ...env, [HANDOFF_ENV.rejected]: reason });
}

function clearStdioFlags(fd: number): void {
  try {
    native.setCloexec(fd, false);
    native.setNonblock(fd, false);
  } catch {
    // stdio closed: nothing to hand on
  }
}
