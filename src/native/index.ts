/**
 * The typed face of nserve's native addon (native/*.cc), and the only module
 * that loads it: with node-gyp-build, build/Release/nserve.node (a build from
 * source) first, else the prebuilt prebuilds/<platform>-<arch>/*.node shipped
 * in the package.
 *
 * The checked functions live by syscall family in src/native/ (sockets.ts,
 * reuseport.ts, fdpass.ts, process.ts, fdlist.ts, notify.ts, flock.ts, with the argument
 * checks in validate.ts) and are re-exported here: callers import this module. The addon itself is
 * loaded in addon.ts, the leaf those families import (so none of them imports this module back).
 *
 * Importing this module never throws. Where the addon cannot load (not Linux,
 * no prebuild for this CPU or libc and no source build, a glibc older than the
 * prebuild needs, or NSERVE_NO_ADDON=1), `available` is false,
 * `unavailableReason` says why in one line, and every function below throws
 * an Error with code ERR_NSERVE_NO_ADDON naming the function and that reason.
 * Callers that need the addon for a whole feature (cluster mode, restarts)
 * call requireAddon(feature) first, for a one-line error that names the
 * feature. docs/install.md.
 *
 * Contract:
 * - Every descriptor the addon creates is close-on-exec (SOCK_CLOEXEC,
 *   MSG_CMSG_CLOEXEC, O_CLOEXEC, F_DUPFD_CLOEXEC) and every socket is
 *   non-blocking. Surviving an execve is an explicit act: setCloexec(fd, false).
 * - Arguments are checked here, before anything reaches C++: a wrong type is a
 *   TypeError (code ERR_INVALID_ARG_TYPE, ERR_INVALID_ARG_VALUE or
 *   ERR_UNKNOWN_SIGNAL), a number out of range a RangeError (ERR_OUT_OF_RANGE).
 * - A failed system call throws an Error shaped like Node's own, built in one
 *   place (native/errors.cc): message `<syscall> <CODE>[ <context>]`, e.g.
 *   `bind EADDRINUSE 127.0.0.1:3000`; properties `code` ('EADDRINUSE'),
 *   `errno` (negative, as in Node: -98), `syscall`, and `address`/`port` or
 *   `path` where they apply. Branch on `code`, never on the message.
 * - Nothing here blocks the event loop: sockets are non-blocking, sendFds and
 *   recvFds use MSG_DONTWAIT, readiness comes from watchReadable (a libuv poll
 *   handle). Reading /proc (listFds) is the one synchronous file access.
 */
export * from './addon.js';
export * from './fdlist.js';
export * from './fdpass.js';
export * from './flock.js';
export * from './notify.js';
export * from './process.js';
export * from './reuseport.js';
export * from './sockets.js';
