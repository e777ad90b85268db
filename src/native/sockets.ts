// Sockets: listen (TCP, unix, abstract), local address, accept queue, accept-and-close.
import net from 'node:net';
import { addon, type ListenOptions, type ListenQueue, type SocketAddress } from './addon.js';
import {
  describe,
  invalidType,
  typeError,
  validateBoolean,
  validateFd,
  validateInt,
  validateString,
} from './validate.js';

/**
 * socket + bind + listen; returns the listening fd (close-on-exec,
 * non-blocking). TCP sets SO_REUSEADDR, SO_REUSEPORT when asked, and
 * IPV6_V6ONLY for tcp6; host must be a numeric address (no DNS lookup, which
 * would block). A unix path whose socket file is stale (connect() refused) is
 * removed first; a live one, or a file that is not a socket, gives EADDRINUSE.
 * A path starting with '@' is an abstract address (exact length, as systemd
 * uses; Node 20's own net pads abstract names to 108 bytes, so it cannot reach
 * one). `mode` is applied with chmod before listen(), so no client sees the
 * umask's mode; abstract names have no file and ignore it.
 */
export function listen(options: ListenOptions): number {
  if (typeof options !== 'object' || options === null) throw invalidType('options', 'an object', options);
  const backlog =
    options.backlog === undefined ? 1024 : validateInt('options.backlog', options.backlog, 0, 2 ** 31 - 1);
  switch (options.family) {
    case 'tcp4':
    case 'tcp6': {
      const host = validateString('options.host', options.host);
      const v6 = options.family === 'tcp6';
      if (!(v6 ? net.isIPv6(host) : net.isIPv4(host))) {
        throw typeError(
          'ERR_INVALID_ARG_VALUE',
          `The property 'options.host' must be a numeric ${v6 ? 'IPv6' : 'IPv4'} address. Received ${describe(host)}`,
        );
      }
      const port = validateInt('options.port', options.port, 0, 65535);
      const reusePort =
        options.reusePort === undefined ? false : validateBoolean('options.reusePort', options.reusePort);
      return addon.listenTcp(v6, host, port, reusePort, backlog);
    }
    case 'unix': {
      const path = validateString('options.path', options.path);
      if (path === '')
        throw typeError('ERR_INVALID_ARG_VALUE', "The property 'options.path' must not be empty");
      const mode = options.mode === undefined ? -1 : validateInt('options.mode', options.mode, 0, 0o7777);
      return addon.listenUnix(path, mode, backlog);
    }
    default:
      throw typeError(
        'ERR_INVALID_ARG_VALUE',
        `The property 'options.family' must be one of 'tcp4', 'tcp6', 'unix'. Received ${describe((options as { family?: unknown }).family)}`,
      );
  }
}

/** getsockname(fd). A unix socket without a name has path ''; an abstract one '@name'. */
export function localAddress(fd: number): SocketAddress {
  return addon.localAddress(validateFd('fd', fd));
}

/**
 * The accept queue of listening TCP socket `fd` (getsockopt TCP_INFO): `depth` connections the kernel
 * completed and nobody accepted yet, and its `limit` (the backlog of the last listen(), capped by
 * net.core.somaxconn). Constant time, whatever the number of connections. null when `fd` is not a
 * listening TCP socket (a unix socket, a connection).
 */
export function listenQueue(fd: number): ListenQueue | null {
  return addon.listenQueue(validateFd('fd', fd));
}

/**
 * Accept every connection queued on listening socket `fd` (close-on-exec, non-blocking), then close
 * `fd`, in one call; returns the accepted descriptors. Closing a listener resets what is queued on it:
 * this is how a graceful stop closes one without resetting anybody. `fd` is closed whether this returns
 * or throws: never close it again (its number may name another descriptor by then).
 */
export function acceptAndClose(fd: number): number[] {
  return addon.acceptAndClose(validateFd('fd', fd));
}
