// --redirect-stdout / --redirect-stderr, and console streams that never kill the process on a write
// error (a full disk): split from logger.ts, which re-exports what the roles use.
import * as fs from 'node:fs';
import type { Logger } from 'pino';
import { errorMessage, usageError } from '../errors.js';
import * as native from '../native/index.js';
import { logEvent } from './events.js';
import { countDropped, SafeDestination } from './logger.js';

/**
 * Make console output (process.stdout/stderr) on a redirected descriptor drop what cannot be written
 * instead of emitting 'error': Node's stream for a file (SyncWriteStream) emits an unhandled 'error' on
 * ENOSPC, which kills the process, and is then destroyed for good.
 */
function guardConsoleStream(stream: NodeJS.WriteStream, fd: number): void {
  const guarded = stream as NodeJS.WriteStream & { [GUARDED]?: true };
  if (guarded[GUARDED]) return;
  guarded[GUARDED] = true;
  if (stream.constructor.name === 'SyncWriteStream') {
    const safe = new SafeDestination(fd);
    stream._write = (chunk: Buffer | string, _encoding, callback) => {
      safe.write(chunk);
      callback();
    };
    return;
  }
  // A stream created before the redirect (a pipe or terminal stream): never let its errors kill us.
  stream.on('error', () => {
    countDropped();
  });
}
const GUARDED = Symbol('nserve.guarded');

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
  if (files.stdout !== undefined) guardConsoleStream(process.stdout, 1);
  if (files.stderr !== undefined) guardConsoleStream(process.stderr, 2);
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
    if (log !== undefined)
      logEvent(
        log,
        'log.files.reopened',
        { stdout: redirected.stdout, stderr: redirected.stderr },
        'log files reopened',
      );
  } catch (err) {
    // Keep writing to the old files rather than lose lines.
    const message = `reopening the log files failed, still writing to the old ones: ${errorMessage(err)}`;
    if (log === undefined) process.stderr.write(`nserve: ${message}\n`);
    else logEvent(log, 'log.files.reopen-failed', { err }, message);
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
