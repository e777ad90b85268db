// Descriptor passing (SCM_RIGHTS on a SEQPACKET socketpair), readiness watching, and descriptor flags.
import { addon, MAX_FDS, MAX_PAYLOAD, type Watcher } from './addon.js';
import { invalidType, validateBoolean, validateFd } from './validate.js';

/**
 * socketpair(AF_UNIX, SOCK_SEQPACKET): message boundaries are kept, so one
 * sendFds is one recvFds. Both ends close-on-exec and non-blocking.
 */
export function socketpair(): [number, number] {
  return addon.socketpair();
}

/**
 * One sendmsg carrying `fds` (SCM_RIGHTS; none when empty) and `payload`,
 * without blocking: a full channel throws code EAGAIN, a closed peer EPIPE
 * (MSG_NOSIGNAL: no SIGPIPE). The payload must be 1 byte to 64 KiB: a
 * zero-byte message would read as end-of-file at the peer.
 */
export function sendFds(sock: number, fds: readonly number[], payload: Buffer | string): void {
  validateFd('sock', sock);
  if (!Array.isArray(fds)) throw invalidType('fds', 'an array of integers', fds);
  for (const [i, fd] of fds.entries()) validateFd(`fds[${i}]`, fd);
  if (fds.length > MAX_FDS) {
    throw Object.assign(
      new RangeError(`sendFds carries at most ${MAX_FDS} descriptors. Received ${fds.length}`),
      {
        code: 'ERR_OUT_OF_RANGE',
      },
    );
  }
  let data: Buffer;
  if (typeof payload === 'string') data = Buffer.from(payload, 'utf8');
  else if (Buffer.isBuffer(payload)) data = payload;
  else throw invalidType('payload', 'a Buffer or a string', payload);
  if (data.length === 0 || data.length > MAX_PAYLOAD) {
    throw Object.assign(
      new RangeError(`The sendFds payload must be 1 to ${MAX_PAYLOAD} bytes. Received ${data.length}`),
      { code: 'ERR_OUT_OF_RANGE' },
    );
  }
  addon.sendFds(sock, fds, data);
}

/**
 * One recvmsg without blocking. null when nothing is queued; `{ data: <empty>,
 * fds: [] }` at end-of-file (the peer closed). Received fds are close-on-exec
 * and now owned by the caller. A message cut short (more than 64 KiB or 64
 * fds) throws code EMSGSIZE after closing whatever fds came with it.
 */
export function recvFds(sock: number): { data: Buffer; fds: number[] } | null {
  return addon.recvFds(validateFd('sock', sock));
}

/**
 * Calls onEvent whenever fd is readable or its peer hung up (a libuv poll
 * handle, UV_READABLE | UV_DISCONNECT, on this thread's loop). Level
 * triggered: drain the fd (recvFds until null) in the callback, and stop at
 * end-of-file, or the event repeats. libuv makes fd non-blocking, and refuses
 * (EEXIST) an fd it already watches, e.g. one a net.Socket reads.
 *
 * An exception thrown by onEvent becomes a process 'uncaughtException', as
 * for Node's own callbacks (the addon calls it through MakeCallback with an
 * async context and hands a throw to napi_fatal_exception). The watcher keeps
 * the process alive until stop() or unref(); stop() before closing fd.
 */
export function watchReadable(
  fd: number,
  onEvent: (readable: boolean, hangup: boolean, error: Error | null) => void,
): Watcher {
  validateFd('fd', fd);
  if (typeof onEvent !== 'function') throw invalidType('onEvent', 'of type function', onEvent);
  return new addon.Watcher(fd, onEvent);
}

// ---- descriptor flags -------------------------------------------------------

export function setCloexec(fd: number, on: boolean): void {
  addon.setCloexec(validateFd('fd', fd), validateBoolean('on', on));
}

export function getCloexec(fd: number): boolean {
  return addon.getCloexec(validateFd('fd', fd));
}

export function setNonblock(fd: number, on: boolean): void {
  addon.setNonblock(validateFd('fd', fd), validateBoolean('on', on));
}

export function getNonblock(fd: number): boolean {
  return addon.getNonblock(validateFd('fd', fd));
}

/** fcntl(F_DUPFD_CLOEXEC, 3): a close-on-exec copy, never numbered 0-2. */
export function dup(fd: number): number {
  return addon.dup(validateFd('fd', fd));
}

/**
 * dup3(oldfd, newfd, O_CLOEXEC): newfd atomically becomes a copy of oldfd (whatever newfd was is closed),
 * close-on-exec. For pointing stdout/stderr (1, 2) at a log file; the two must differ.
 */
export function dup2(oldfd: number, newfd: number): void {
  addon.dup2(validateFd('oldfd', oldfd), validateFd('newfd', newfd));
}

export function close(fd: number): void {
  addon.close(validateFd('fd', fd));
}
