// The server's lock: one flock(LOCK_EX | LOCK_NB) per file beside --pidfile and --state (`<file>.lock`),
// taken before anything binds and held for the server's life, so that two servers never share a pidfile
// or a state file, even when started at the same instant. The check in os/pidfile.ts (does the file name a
// live nserve?) cannot see a server that has not written its file yet; the kernel's lock can.
//
// - The lock belongs to the open file description: it lasts while the descriptor is open, across every
//   hot restart's execve (the descriptor is kept like a listener: restart/handoff.ts `locks`), and the
//   kernel lets it go when the process ends, however it ends. Workers and the boot-check child never
//   get it (close-on-exec).
// - The lock file is never removed, at stop or otherwise. Unlinking a locked file lets a server that
//   opened the old name lock the orphaned inode while another creates and locks a new one: two servers
//   again. An empty file left beside the pidfile is harmless; a stale one is taken over by the next
//   start, as the kernel holds no lock for a dead process.
// - The lock file may sit in a directory others can write (/tmp): it is opened without following a
//   symbolic link, anything but a regular file is refused, and nothing is ever written to it (so a hard
//   link planted there to someone's file loses nothing).
// - Without the addon (portable mode) there is no lock: only os/pidfile.ts's check, which a simultaneous
//   start can pass twice.
import * as fs from 'node:fs';
import { errorCode, errorMessage, usageError } from '../errors.js';
import { logEvent } from '../log/events.js';
import type { Logger } from '../log/logger.js';
import * as native from '../native/index.js';
import { pidIn, type ServerFile } from '../os/pidfile.js';
import { STATE_FILE_MAX_BYTES, statePidIn } from '../os/state-file.js';
import type { HandedLock } from '../restart/handoff.js';

/** The pidfile and the state file, as the checks and the lock name them. */
export function serverFiles(config: {
  pidfile?: string | undefined;
  stateFile?: string | undefined;
}): ServerFile[] {
  const files: ServerFile[] = [];
  if (config.pidfile !== undefined)
    files.push({
      flag: '--pidfile',
      file: config.pidfile,
      kind: 'a pidfile (no PID in it)',
      pidIn,
      maxBytes: 64,
    });
  if (config.stateFile !== undefined)
    files.push({
      flag: '--state',
      file: config.stateFile,
      kind: 'an nserve state file',
      pidIn: statePidIn,
      maxBytes: STATE_FILE_MAX_BYTES,
    });
  return files;
}

/** The lock file of a pidfile or state file. */
export function lockPathOf(file: string): string {
  return `${file}.lock`;
}

/**
 * Take (or, after a hot restart's exec, adopt) the lock of each file; throws the one-line refusal when a
 * running server holds one. Every returned descriptor is close-on-exec.
 */
export function lockServerFiles(
  files: readonly ServerFile[],
  handed: readonly HandedLock[] | undefined,
  log: Logger,
): HandedLock[] {
  const held: HandedLock[] = [];
  for (const target of files) {
    const file = lockPathOf(target.file);
    if (held.some((l) => l.file === file)) continue; // --pidfile and --state name one file
    const previous = handed?.find((l) => l.file === file);
    if (previous !== undefined && adopt(previous, log)) held.push(previous);
    else held.push({ file, fd: take(target, file) });
  }
  // A handed lock no longer wanted (the config moved --pidfile) stays open, close-on-exec, until the next
  // exec or the exit: if this image fails to boot, the way back (handoff `back.fds`) still names it.
  for (const l of handed ?? []) if (!held.includes(l)) closeOnExec(l.fd);
  return held;
}

/**
 * Before a hot restart: can the new image lock `file` (a --pidfile or --state it did not have)? A
 * problem in one line, or undefined. The lock is released at once; the new image takes it again.
 */
export function lockProblem(target: ServerFile, held: readonly HandedLock[]): string | undefined {
  const file = lockPathOf(target.file);
  if (!native.available || held.some((l) => l.file === file)) return undefined;
  try {
    native.close(take(target, file));
    return undefined;
  } catch (err) {
    return errorMessage(err);
  }
}

/** A lock handed over by the previous image, if its descriptor still holds the file at that path. */
function adopt(lock: HandedLock, log: Logger): boolean {
  try {
    const open = fs.fstatSync(lock.fd);
    const named = fs.lstatSync(lock.file);
    if (open.isFile() && named.isFile() && open.dev === named.dev && open.ino === named.ino) {
      closeOnExec(lock.fd);
      return true;
    }
  } catch {
    // the descriptor or the file is gone
  }
  // Someone removed or replaced the lock file meanwhile: the lock held is on a file nobody else will open.
  logEvent(
    log,
    'lock.file.replaced',
    { file: lock.file },
    `the lock file ${lock.file} was replaced while held: locking it again`,
  );
  return false;
}

function take(target: ServerFile, file: string): number {
  try {
    return native.lockFile(file);
  } catch (err) {
    if (native.isLockHeld(err)) {
      const pid = lockHolder(file) ?? pidNamedIn(target);
      throw usageError(
        'ERR_NSERVE_ALREADY_RUNNING',
        `${target.flag} ${target.file} is held by a running server (${pid === undefined ? 'PID unknown' : `PID ${pid}`}): stop it first, or give this server another ${target.flag}`,
      );
    }
    const code = errorCode(err) ?? 'error';
    const why = { ELOOP: 'a symbolic link, never followed', EINVAL: 'not a regular file' }[code] ?? code;
    throw usageError(
      'ERR_NSERVE_INVALID_CONFIG',
      `invalid ${target.flag} ${target.file}: cannot lock ${file} (${why}): remove it, or name a file in a directory only the server's user can write`,
      err,
    );
  }
}

function closeOnExec(fd: number): void {
  try {
    native.setCloexec(fd, true);
  } catch {
    // already closed
  }
}

/**
 * The PID holding the flock on `file`, from /proc/locks (`1: FLOCK ADVISORY WRITE 1234 08:01:5678 0 EOF`:
 * the device as major:minor in hex, then the inode). On overlayfs the device shown is the layer's, not the
 * one stat() gives, so a unique inode match is taken too.
 */
export function lockHolder(file: string, locks?: string): number | undefined {
  let st: fs.Stats;
  let text: string;
  try {
    st = fs.lstatSync(file);
    text = locks ?? fs.readFileSync('/proc/locks', 'utf8');
  } catch {
    return undefined;
  }
  const byDevice: number[] = [];
  const byInode: number[] = [];
  for (const line of text.split('\n')) {
    const cols = line.trim().split(/\s+/);
    if (cols[1] !== 'FLOCK' || cols[3] !== 'WRITE') continue; // `->` marks a waiter
    const pid = Number(cols[4]);
    const [major, minor, ino] = (cols[5] ?? '').split(':');
    if (!(pid > 0) || ino === undefined || Number(ino) !== st.ino) continue;
    byInode.push(pid);
    if (`${major}:${minor}` === deviceOf(st.dev)) byDevice.push(pid);
  }
  return byDevice[0] ?? (new Set(byInode).size === 1 ? byInode[0] : undefined);
}

/** st_dev as /proc/locks prints it: glibc's major:minor split, each in hex, at least two digits. */
export function deviceOf(dev: number): string {
  const d = BigInt(dev);
  const major = ((d >> 8n) & 0xfffn) | ((d >> 32n) & ~0xfffn);
  const minor = (d & 0xffn) | ((d >> 12n) & ~0xffn);
  return `${major.toString(16).padStart(2, '0')}:${minor.toString(16).padStart(2, '0')}`;
}

/** The PID the pidfile or state file names, if it is there and of its kind. */
function pidNamedIn(target: ServerFile): number | undefined {
  try {
    const st = fs.statSync(target.file);
    if (!st.isFile() || st.size > target.maxBytes) return undefined;
    return target.pidIn(fs.readFileSync(target.file, 'utf8'));
  } catch {
    return undefined;
  }
}
