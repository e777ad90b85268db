import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import { type LevelWithSilent, type Logger, pino } from 'pino';
import { errorMessage, usageError } from './errors.js';
import * as native from './native.js';

export type { Logger } from 'pino';

export const LOG_LEVELS: readonly LevelWithSilent[] = [
  'fatal',
  'error',
  'warn',
  'info',
  'debug',
  'trace',
  'silent',
];

export interface LoggerOptions {
  level: LevelWithSilent;
  /** Fields on every line, e.g. `{ role: 'worker', worker: 2 }`. */
  base?: Record<string, unknown>;
  /** Human-readable lines; defaults to whether stdout is a terminal. */
  pretty?: boolean;
}

/**
 * Logs are written synchronously, in-process: pino transports run in worker threads, and an `execve`
 * (hot restart) kills those threads with whatever they had not written yet.
 */
export function createLogger(options: LoggerOptions): Logger {
  const usePretty = options.pretty ?? process.stdout.isTTY === true;
  const base = { pid: process.pid, ...options.base };
  if (usePretty) {
    // Loaded only for a terminal: it costs ~20 ms of start-up, which a hot restart waits for.
    const pretty = createRequire(import.meta.url)('pino-pretty') as typeof import('pino-pretty');
    const stream = pretty({
      sync: true,
      colorize: true,
      ignore: 'hostname',
      translateTime: 'SYS:HH:MM:ss.l',
    });
    return pino({ level: options.level, base }, stream);
  }
  return pino(
    { level: options.level, base, timestamp: pino.stdTimeFunctions.isoTime },
    pino.destination({ fd: 1, sync: true }),
  );
}

// ── --redirect-stdout / --redirect-stderr ──────────────────────────────────────────────────────────────
// The files are put on descriptors 1 and 2 themselves (dup3), not just under the logger, so that
// everything lands in them: the app's console output, Node's own report of a fatal error, the output of
// child processes, and workers, which inherit 1 and 2 from the master. Opened for append (O_APPEND: lines
// from several processes never overwrite each other). SIGHUP reopens them by path, after logrotate has
// renamed the old ones; a master passes the SIGHUP on to its workers, which reopen their own.

export interface StdioFiles {
  stdout: string | undefined;
  stderr: string | undefined;
}

let redirected: StdioFiles | undefined;
const reopenedListeners: (() => void)[] = [];

/** Point stdout/stderr at the configured files (a no-op without any). Throws a usage error if one cannot be opened. */
export function redirectStdio(files: StdioFiles): void {
  if (files.stdout === undefined && files.stderr === undefined) return;
  try {
    pointStdioAt(files);
  } catch (err) {
    const flag = err instanceof OpenError ? err.flag : 'redirect';
    throw usageError('ERR_NSERVE_INVALID_CONFIG', `cannot open ${flag}: ${errorMessage(err)}`, err);
  }
  redirected = { ...files };
}

class OpenError extends Error {
  constructor(
    readonly flag: string,
    cause: unknown,
  ) {
    super(errorMessage(cause), { cause });
  }
}

function pointStdioAt(files: StdioFiles): void {
  const opened = new Map<string, number>();
  try {
    for (const [target, file, flag] of [
      [1, files.stdout, '--redirect-stdout'],
      [2, files.stderr, '--redirect-stderr'],
    ] as const) {
      if (file === undefined) continue;
      let fd = opened.get(file);
      if (fd === undefined) {
        try {
          fd = fs.openSync(file, 'a', 0o640);
        } catch (err) {
          throw new OpenError(flag, err);
        }
        opened.set(file, fd);
      }
      native.dup2(fd, target);
    }
  } finally {
    for (const fd of opened.values()) fs.closeSync(fd);
  }
}

/**
 * SIGHUP: reopen the redirected files (they may have been renamed away). Returns false when nothing is
 * redirected, so the caller can give SIGHUP its other meaning.
 */
export function reopenRedirectedStdio(log?: Logger): boolean {
  if (redirected === undefined) return false;
  try {
    pointStdioAt(redirected);
    log?.info({ stdout: redirected.stdout, stderr: redirected.stderr }, 'log files reopened');
  } catch (err) {
    // Keep writing to the old files rather than lose lines.
    const message = `reopening the log files failed, still writing to the old ones: ${errorMessage(err)}`;
    if (log === undefined) process.stderr.write(`nserve: ${message}\n`);
    else log.error({ err }, message);
  }
  for (const fn of reopenedListeners) fn();
  return true;
}

/** Run `fn` after every reopen (the master uses it to pass SIGHUP on to its workers). */
export function onStdioReopened(fn: () => void): void {
  reopenedListeners.push(fn);
}

export function stdioRedirected(): boolean {
  return redirected !== undefined;
}
