// Advisory locks: flock on a lock file, held for a server's life (src/control/lock.ts).
import { addon } from './addon.js';
import { typeError, validateString } from './validate.js';

/**
 * open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644) and flock(LOCK_EX | LOCK_NB); returns the
 * descriptor holding the lock (close-on-exec: clear it only to carry the lock across an execve). The lock
 * belongs to the open file description, so it lasts while this descriptor (or a dup) is open, and is
 * released by the kernel when the last one closes, whatever ends the process.
 *
 * Errors (Node-shaped, with `path`): `EAGAIN` (syscall flock) when another open file description holds
 * the lock (EWOULDBLOCK is the same number on Linux); `ELOOP` for a symbolic link (never followed);
 * `EINVAL` (syscall open) for anything but a regular file; whatever open(2) says otherwise (ENOENT,
 * EACCES, EROFS, EISDIR).
 */
export function lockFile(path: string): number {
  validateString('path', path);
  if (path === '') throw typeError('ERR_INVALID_ARG_VALUE', "The argument 'path' must not be empty");
  return addon.lockFile(path);
}

/** Whether `err` is lockFile's "another holder has it" (EAGAIN, also spelled EWOULDBLOCK). */
export function isLockHeld(err: unknown): boolean {
  const code = typeof err === 'object' && err !== null ? (err as { code?: unknown }).code : undefined;
  return code === 'EAGAIN' || code === 'EWOULDBLOCK';
}
