// Hot restart: the boot check and the re-exec of the same command line in the same process.
//
// Protocol between the old image and the new one (same PID):
//   - listening descriptors: FD_CLOEXEC cleared, described in NSERVE_INHERIT (see binder.ts);
//   - extra descriptors the new image must adopt (cluster: channels to the running workers), described
//     in variables set by the caller (see master.ts), likewise with FD_CLOEXEC cleared;
//   - NSERVE_RESTART = "<count>:<epoch ms when the restart was requested>" for logs and stats;
//   - stdio 0-2: FD_CLOEXEC and O_NONBLOCK cleared (Node sets both; without this the new image has no output);
//   - SIGUSR1/SIGUSR2/SIGHUP/SIGTTIN/SIGTTOU ignored across the exec, so one sent while the new image
//     boots is dropped instead of killing the process; Node's handlers replace the ignore once installed.
import { spawn } from 'node:child_process';
import { errorMessage } from './errors.js';
import type { Logger } from './logger.js';
import * as native from './native.js';
import { IGNORED_ACROSS_EXEC } from './signals.js';

export interface RestartInfo {
  /** How many hot restarts this PID has been through. */
  count: number;
  /** When the restart that produced this image was requested (epoch ms), if any. */
  requestedAt: number | undefined;
}

export function parseRestartEnv(value: string | undefined): RestartInfo {
  const m = /^(\d+):(\d+)$/.exec(value ?? '');
  return m === null
    ? { count: 0, requestedAt: undefined }
    : { count: Number(m[1]), requestedAt: Number(m[2]) };
}

/** The exact command line this process was started with, to be run again. */
export function ownCommandLine(): { file: string; args: string[] } {
  return { file: process.execPath, args: [...process.execArgv, ...process.argv.slice(1)] };
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
  what: 'app' | 'config',
  cwd: string,
): Promise<BootCheckResult> {
  const started = Date.now();
  const { file, args } = ownCommandLine();
  return new Promise<BootCheckResult>((resolve) => {
    const child = spawn(file, args, {
      env: { ...process.env, NSERVE_BOOT_CHECK: what === 'app' ? '1' : 'config' },
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      cwd,
    });
    let settled = false;
    const finish = (result: BootCheckResult): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
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
  /** NSERVE_* variables describing those descriptors to the new image. */
  env: Record<string, string>;
  restart: RestartInfo;
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
  delete env.NSERVE_BOOT_CHECK;
  Object.assign(env, options.env, {
    NSERVE_RESTART: `${options.restart.count + 1}:${options.restart.requestedAt ?? Date.now()}`,
  });
  options.log.info({ keepFds: options.keepFds, restart: options.restart.count + 1 }, 'hot restart: exec');
  options.log.flush?.();
  const stdioState = [0, 1, 2].map((fd) => safeCloexec(fd));
  for (const fd of [0, 1, 2]) {
    try {
      native.setCloexec(fd, false);
      native.setNonblock(fd, false);
    } catch {
      // stdio closed: nothing to hand on
    }
  }
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
