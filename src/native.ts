/**
 * The typed face of nserve's native addon (native/*.cc), and the only module
 * that loads it: with node-gyp-build, build/Release/nserve.node (a build from
 * source) first, else the prebuilt prebuilds/<platform>-<arch>/*.node shipped
 * in the package.
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
import { existsSync, readFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import net from 'node:net';
import { constants as osConstants } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

export type ListenOptions =
  | { family: 'tcp4' | 'tcp6'; host: string; port: number; reusePort?: boolean; backlog?: number }
  | { family: 'unix'; path: string; mode?: number; backlog?: number };

export type SocketAddress =
  | { family: 'IPv4' | 'IPv6'; address: string; port: number }
  | { family: 'unix'; path: string };

export interface Watcher {
  /** Idempotent. Call it before closing the descriptor. */
  stop(): void;
  ref(): void;
  unref(): void;
}

export interface RawFd {
  fd: number;
  target: string;
  flags: number;
  cloexec: boolean;
  pos?: number;
  socket?: SocketAddress;
}

export type FdKind = 'socket' | 'pipe' | 'file' | 'directory' | 'tty' | 'char' | 'anon_inode' | 'other';

export interface FdInfo extends RawFd {
  kind: FdKind;
  inode?: number;
}

export type ExitStatus = { pid: number; code: number | null; signal: NodeJS.Signals | null };

/** The most descriptors one sendFds call carries (SCM_RIGHTS). */
export const MAX_FDS = 64;
/** The largest payload of one sendFds message; recvFds reads at most this. */
export const MAX_PAYLOAD = 64 * 1024;

type WatchCallback = (readable: boolean, hangup: boolean, error: Error | null) => void;

export interface Addon {
  listenTcp(v6: boolean, host: string, port: number, reusePort: boolean, backlog: number): number;
  listenUnix(path: string, mode: number, backlog: number): number;
  localAddress(fd: number): SocketAddress;
  acceptAndClose(fd: number): number[];
  socketpair(): [number, number];
  sendFds(sock: number, fds: readonly number[], payload: Buffer): void;
  recvFds(sock: number): { data: Buffer; fds: number[] } | null;
  Watcher: new (fd: number, onEvent: WatchCallback) => Watcher;
  execve(path: string, argv: readonly string[], env: readonly string[], ignore: readonly number[]): never;
  waitpid(pid: number): { pid: number; code: number | null; signal: number | null } | null;
  setCloexec(fd: number, on: boolean): void;
  getCloexec(fd: number): boolean;
  setNonblock(fd: number, on: boolean): void;
  dup(fd: number): number;
  dup2(oldfd: number, newfd: number): void;
  close(fd: number): void;
  listFdsRaw(pid: number): RawFd[];
  sdNotify(socketPath: string, state: string): void;
  attachReuseportCbpf(fd: number, groupSize: number): void;
  detachReuseportBpf(fd: number): boolean;
}

// The package root is the nearest directory up from this file holding
// binding.gyp: dist/src/native.js when compiled, src/native.ts from source.
function packageRoot(): string | undefined {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, 'binding.gyp'))) return dir;
    const parent = dirname(dir);
    if (parent === dir) return undefined;
    dir = parent;
  }
}

/** The environment variable that forces the no-addon path (as on macOS or Windows), for tests and for users. */
export const NO_ADDON_ENV = 'NSERVE_NO_ADDON';

export type AddonState = { addon: Addon; reason?: undefined } | { addon?: undefined; reason: string };

type NodeGypBuild = { (dir: string): unknown; path(dir: string): string };

/**
 * Loads the addon from the package at `root` (node-gyp-build: build/Release,
 * then prebuilds/), or says in one line why it cannot. Exported for tests.
 */
export function loadAddon(
  root: string | undefined,
  env: NodeJS.ProcessEnv = process.env,
  platform: NodeJS.Platform = process.platform,
): AddonState {
  if (env[NO_ADDON_ENV] === '1') return { reason: `${NO_ADDON_ENV}=1 is set` };
  if (platform !== 'linux') {
    return { reason: `the native addon is Linux-only (this is ${platform}-${process.arch})` };
  }
  if (root === undefined) return { reason: 'cannot find the package root (binding.gyp) for the addon' };
  const require = createRequire(import.meta.url);
  let file: string;
  try {
    file = (require('node-gyp-build') as NodeGypBuild).path(root);
  } catch (err) {
    return {
      reason:
        `no prebuilt addon for linux-${process.arch} and none built from source ` +
        `(${firstLine(err)}); run \`npm rebuild nserve\` with python3, make and g++ installed`,
    };
  }
  try {
    return { addon: require(file) as Addon };
  } catch (err) {
    // e.g. "/lib/x86_64-linux-gnu/libc.so.6: version `GLIBC_2.28' not found (required by …)"
    return { reason: `the addon ${relative(root, file)} failed to load: ${firstLine(err)}` };
  }
}

function firstLine(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  return (message.split('\n')[0] ?? '').trim();
}

const state = loadAddon(packageRoot());

/** Whether the native addon loaded; without it only single mode can serve (docs/install.md). */
export const available: boolean = state.addon !== undefined;
/** Why the addon is unavailable, in one line; undefined when it loaded. */
export const unavailableReason: string | undefined = state.reason;

function noAddon(what: string): Error {
  return Object.assign(
    new Error(
      `${what} needs nserve's native addon, which is unavailable: ${state.reason ?? 'unknown reason'}`,
    ),
    { code: 'ERR_NSERVE_NO_ADDON' },
  );
}

/**
 * Throws (code ERR_NSERVE_NO_ADDON) unless the addon loaded, e.g.
 * requireAddon('cluster mode') gives "cluster mode needs nserve's native
 * addon, which is unavailable: the native addon is Linux-only (this is
 * darwin-arm64)".
 */
export function requireAddon(feature: string): void {
  if (!available) throw noAddon(feature);
}

// Without the addon, every call throws; the Proxy keeps the typed face in one
// place instead of a check in every function below.
const addon: Addon =
  state.addon ??
  (new Proxy(
    {},
    {
      get(_target, key) {
        return function unavailable(): never {
          throw noAddon(`native.${String(key)}`);
        };
      },
    },
  ) as Addon);

// ---- argument checks ----------------------------------------------------

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (typeof value === 'string') return `type string (${JSON.stringify(value.slice(0, 40))})`;
  if (typeof value === 'number' || typeof value === 'boolean') return `type ${typeof value} (${value})`;
  return `type ${typeof value}`;
}

function typeError(code: string, message: string): TypeError {
  return Object.assign(new TypeError(message), { code });
}

function invalidType(name: string, expected: string, value: unknown): TypeError {
  return typeError(
    'ERR_INVALID_ARG_TYPE',
    `The "${name}" argument must be ${expected}. Received ${describe(value)}`,
  );
}

function validateInt(name: string, value: unknown, min: number, max: number): number {
  if (typeof value !== 'number') throw invalidType(name, 'of type number', value);
  if (!Number.isInteger(value) || value < min || value > max) {
    const error = new RangeError(
      `The value of "${name}" is out of range. It must be an integer >= ${min} and <= ${max}. Received ${value}`,
    );
    throw Object.assign(error, { code: 'ERR_OUT_OF_RANGE' });
  }
  return value;
}

const validateFd = (name: string, value: unknown): number => validateInt(name, value, 0, 2 ** 31 - 1);

function validateString(name: string, value: unknown): string {
  if (typeof value !== 'string') throw invalidType(name, 'of type string', value);
  if (value.includes('\0')) {
    throw typeError('ERR_INVALID_ARG_VALUE', `The argument '${name}' must be a string without null bytes`);
  }
  return value;
}

function validateBoolean(name: string, value: unknown): boolean {
  if (typeof value !== 'boolean') throw invalidType(name, 'of type boolean', value);
  return value;
}

function validateStrings(name: string, value: unknown): string[] {
  if (!Array.isArray(value)) throw invalidType(name, 'an array of strings', value);
  return value.map((item, i) => validateString(`${name}[${i}]`, item));
}

// ---- sockets --------------------------------------------------------------

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
 * Accept every connection queued on listening socket `fd` (close-on-exec, non-blocking), then close
 * `fd`, in one call; returns the accepted descriptors. Closing a listener resets what is queued on it:
 * this is how a graceful stop closes one without resetting anybody.
 */
export function acceptAndClose(fd: number): number[] {
  return addon.acceptAndClose(validateFd('fd', fd));
}

// ---- reuseport balancing -----------------------------------------------------

/** The largest group attachReuseportCbpf accepts (the kernel grows a group to at most 65535 sockets). */
export const MAX_REUSEPORT_GROUP = 65535;

/**
 * Pins each client address to one socket of fd's SO_REUSEPORT group: attaches a classic BPF program
 * (SO_ATTACH_REUSEPORT_CBPF) that hashes the connection's IPv4 or IPv6 source address (the family is the
 * socket's own) and returns `hash % groupSize`, the index of a socket in the order the sockets joined the
 * group. The program belongs to the group, so attaching through any one socket covers all of them, and it
 * replaces any program attached before. `groupSize` must be the group's size: an index past the end makes
 * the kernel fall back to its own hash, and a smaller modulus leaves the last sockets without connections.
 * The index of a socket stays put only while no socket of the group closes (closing one moves the last
 * socket into its place). Throws EINVAL for a socket without SO_REUSEPORT, EAFNOSUPPORT for a unix socket.
 * reuseportSlot() computes the same choice.
 */
export function attachReuseportCbpf(fd: number, groupSize: number): void {
  addon.attachReuseportCbpf(
    validateFd('fd', fd),
    validateInt('groupSize', groupSize, 1, MAX_REUSEPORT_GROUP),
  );
}

/**
 * Detaches the program of fd's reuseport group (SO_DETACH_REUSEPORT_BPF, Linux 5.3), so the kernel's own
 * hash spreads connections again. false when the group had none.
 */
export function detachReuseportBpf(fd: number): boolean {
  return addon.detachReuseportBpf(validateFd('fd', fd));
}

const mul32 = (a: number, b: number): number => Math.imul(a, b) >>> 0;

/** murmur3's fmix32, as the program runs it (32-bit arithmetic). */
function fmix32(h: number): number {
  let x = h >>> 0;
  x = mul32(x ^ (x >>> 16), 0x85ebca6b);
  x = mul32(x ^ (x >>> 13), 0xc2b2ae35);
  return (x ^ (x >>> 16)) >>> 0;
}

/**
 * The socket index the attachReuseportCbpf program picks for a client `address` (an IPv4 or IPv6
 * numeric address, as Node reports `socket.remoteAddress`) in a group of `groupSize`: the same hash,
 * computed in JS, for tests and diagnostics. An IPv6 address is hashed as four big-endian words folded
 * together (w0·G ^ w1, ·G ^ w2, ·G ^ w3, G = 0x9e3779b1), then mixed like an IPv4 address.
 */
export function reuseportSlot(address: string, groupSize: number): number {
  validateString('address', address);
  validateInt('groupSize', groupSize, 1, MAX_REUSEPORT_GROUP);
  let h: number;
  if (net.isIPv4(address)) {
    h = address.split('.').reduce((acc, part) => ((acc << 8) | Number(part)) >>> 0, 0);
  } else if (net.isIPv6(address)) {
    const words = ipv6Words(address);
    h = words[0]!;
    for (let i = 1; i < 4; i++) h = (mul32(h, 0x9e3779b1) ^ words[i]!) >>> 0;
  } else {
    throw typeError(
      'ERR_INVALID_ARG_VALUE',
      `The argument 'address' must be an IP address. Received ${describe(address)}`,
    );
  }
  return fmix32(h) % groupSize;
}

/** The four 32-bit big-endian words of an IPv6 address ('::1', 'fd00::2', '::ffff:1.2.3.4'). */
function ipv6Words(address: string): number[] {
  const text = address.split('%')[0]!;
  let head = text;
  let tail: number[] = [];
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4 !== null) {
    const b = v4[1]!.split('.').map(Number);
    tail = [(b[0]! << 8) | b[1]!, (b[2]! << 8) | b[3]!];
    head = text.slice(0, -v4[1]!.length);
    if (head.endsWith(':') && !head.endsWith('::')) head = head.slice(0, -1);
  }
  const [left = '', right] = head.split('::');
  const parse = (s: string): number[] => (s === '' ? [] : s.split(':').map((g) => Number.parseInt(g, 16)));
  const l = parse(left);
  const r = [...(right === undefined ? [] : parse(right)), ...tail];
  const groups =
    right === undefined
      ? [...l, ...tail]
      : [...l, ...new Array<number>(8 - l.length - r.length).fill(0), ...r];
  const words: number[] = [];
  for (let i = 0; i < 8; i += 2) words.push(((groups[i]! << 16) | groups[i + 1]!) >>> 0);
  return words;
}

// ---- descriptor passing -----------------------------------------------------

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

// ---- processes ----------------------------------------------------------------

function signalNumber(name: string): number {
  const number = (osConstants.signals as Record<string, number | undefined>)[name];
  if (typeof name !== 'string' || number === undefined) {
    throw typeError('ERR_UNKNOWN_SIGNAL', `Unknown signal: ${String(name)}`);
  }
  return number;
}

function signalName(number: number): NodeJS.Signals {
  for (const [name, value] of Object.entries(osConstants.signals)) {
    if (value === number) return name as NodeJS.Signals;
  }
  // Real-time signals have no name in os.constants.
  return `SIG${number}` as NodeJS.Signals;
}

/**
 * Replaces this process's image. Before the exec every signal is blocked,
 * every handler saved, every catchable signal set to SIG_DFL except those in
 * ignoreSignals (SIG_IGN, which survives exec), and then the mask emptied.
 * If execve fails the handlers and the mask are restored and the error thrown
 * (syscall 'execve', path). Only descriptors without close-on-exec survive:
 * clear it (setCloexec) on 0-2 and on what the new image must inherit.
 */
export function execve(
  path: string,
  argv: readonly string[],
  env: readonly string[],
  options: { ignoreSignals?: readonly NodeJS.Signals[] } = {},
): never {
  validateString('path', path);
  const args = validateStrings('argv', argv);
  const envs = validateStrings('env', env);
  const names = options.ignoreSignals ?? [];
  if (!Array.isArray(names)) throw invalidType('options.ignoreSignals', 'an array of signal names', names);
  return addon.execve(path, args, envs, names.map(signalNumber));
}

/**
 * waitpid(pid, WNOHANG): null while the child runs, its exit status once it
 * has ended (reaping it). Throws ECHILD for a PID that is not this process's
 * child, or was already reaped (libuv reaps the children it spawned itself:
 * use this for children inherited across execve).
 */
export function waitpid(pid: number): ExitStatus | null {
  const status = addon.waitpid(validateInt('pid', pid, 1, 2 ** 31 - 1));
  if (status === null) return null;
  return {
    pid: status.pid,
    code: status.code,
    signal: status.signal === null ? null : signalName(status.signal),
  };
}

// ---- descriptor listing -----------------------------------------------------------

/**
 * The descriptors of this process (or pid) from /proc/PID/fd and fdinfo. For
 * this process, sockets carry their getsockname address. A process that does
 * not exist throws code ESRCH.
 */
export function listFdsRaw(pid?: number): RawFd[] {
  return addon.listFdsRaw(pid === undefined ? -1 : validateInt('pid', pid, 1, 2 ** 31 - 1));
}

const TTY_PATH = /^\/dev\/(?:pts\/\d+|tty\w*|console)$/;

function classify(pid: number, raw: RawFd): { kind: FdKind; inode?: number } {
  const special = /^(socket|pipe):\[(\d+)\]$/.exec(raw.target);
  if (special) return { kind: special[1] as 'socket' | 'pipe', inode: Number(special[2]) };
  if (raw.target.startsWith('anon_inode:')) return { kind: 'anon_inode' };
  if (!raw.target.startsWith('/')) return { kind: 'other' };
  try {
    // The /proc link reaches the open file itself: deleted files and other
    // mount namespaces included.
    const st = statSync(`/proc/${pid}/fd/${raw.fd}`);
    const inode = st.ino;
    if (st.isFile()) return { kind: 'file', inode };
    if (st.isDirectory()) return { kind: 'directory', inode };
    if (st.isCharacterDevice()) return { kind: TTY_PATH.test(raw.target) ? 'tty' : 'char', inode };
    if (st.isFIFO()) return { kind: 'pipe', inode };
    if (st.isSocket()) return { kind: 'socket', inode };
    return { kind: 'other', inode };
  } catch {
    return { kind: 'other' }; // closed meanwhile
  }
}

// /proc/PID/net/tcp{,6} and udp{,6}: "sl local_address rem_address st ...
// inode" with the address in hex, IPv4 as one little-endian 32-bit word, IPv6
// as four of them; the port in big-endian hex.
function hexToIp(hex: string): string {
  const words = hex.match(/.{8}/g) ?? [];
  const bytes = words.flatMap((w) => [w.slice(6, 8), w.slice(4, 6), w.slice(2, 4), w.slice(0, 2)]);
  if (bytes.length === 4) return bytes.map((b) => Number.parseInt(b, 16)).join('.');
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(`${bytes[i]}${bytes[i + 1]}`);
  return new net.SocketAddress({ address: groups.join(':'), family: 'ipv6' }).address;
}

function readProcNet(pid: number, name: string): string[] {
  try {
    return readFileSync(`/proc/${pid}/net/${name}`, 'utf8').split('\n').slice(1);
  } catch {
    return []; // e.g. no IPv6 in that namespace
  }
}

function socketsByInode(pid: number): Map<number, SocketAddress> {
  const map = new Map<number, SocketAddress>();
  for (const [name, family] of [
    ['tcp', 'IPv4'],
    ['udp', 'IPv4'],
    ['tcp6', 'IPv6'],
    ['udp6', 'IPv6'],
  ] as const) {
    for (const line of readProcNet(pid, name)) {
      const fields = line.trim().split(/\s+/);
      if (fields.length < 10) continue;
      const [hexAddress = '', hexPort = ''] = fields[1]!.split(':');
      map.set(Number(fields[9]), {
        family,
        address: hexToIp(hexAddress),
        port: Number.parseInt(hexPort, 16),
      });
    }
  }
  // "Num RefCount Protocol Flags Type St Inode [Path]"; abstract paths start with '@'.
  for (const line of readProcNet(pid, 'unix')) {
    const fields = line.trim().split(/\s+/);
    if (fields.length < 7) continue;
    map.set(Number(fields[6]), { family: 'unix', path: fields.slice(7).join(' ') });
  }
  return map;
}

/**
 * listFdsRaw plus a kind, an inode and, for sockets of another process, the
 * local address found by inode in /proc/PID/net. Sorted by fd.
 */
export function listFds(pid?: number): FdInfo[] {
  const raw = listFdsRaw(pid);
  const procPid = pid ?? process.pid;
  const self = procPid === process.pid;
  let sockets: Map<number, SocketAddress> | undefined;
  const out = raw.map((entry): FdInfo => {
    const info: FdInfo = { ...entry, ...classify(procPid, entry) };
    if (!self && info.kind === 'socket' && info.socket === undefined && info.inode !== undefined) {
      sockets ??= socketsByInode(procPid);
      const address = sockets.get(info.inode);
      if (address) info.socket = address;
    }
    return info;
  });
  return out.sort((a, b) => a.fd - b.fd);
}

// ---- systemd ----------------------------------------------------------------------

/** One datagram to a sd_notify socket ('@name': abstract). Throws on failure, e.g. ECONNREFUSED. */
export function sdNotify(socketPath: string, state: string): void {
  validateString('socketPath', socketPath);
  if (socketPath === '')
    throw typeError('ERR_INVALID_ARG_VALUE', "The argument 'socketPath' must not be empty");
  addon.sdNotify(socketPath, validateString('state', state));
}

/**
 * Best-effort sd_notify: false when NOTIFY_SOCKET is unset or sending failed
 * (never throws for that), true when the datagram went out.
 */
export function notify(state: string, env: NodeJS.ProcessEnv = process.env): boolean {
  validateString('state', state);
  const socketPath = env.NOTIFY_SOCKET;
  if (!socketPath) return false;
  try {
    sdNotify(socketPath, state);
    return true;
  } catch {
    return false;
  }
}
