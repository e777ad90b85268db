/**
 * The loaded addon and the types of its face: the leaf that the syscall families (sockets.ts,
 * reuseport.ts, fdpass.ts, process.ts, fdlist.ts, notify.ts, flock.ts) import, so that none of them
 * imports index.ts back. Everything outside src/native/ imports index.ts.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

export type ListenOptions =
  | { family: 'tcp4' | 'tcp6'; host: string; port: number; reusePort?: boolean; backlog?: number }
  | { family: 'unix'; path: string; mode?: number; backlog?: number };

export type SocketAddress =
  | { family: 'IPv4' | 'IPv6'; address: string; port: number }
  | { family: 'unix'; path: string };

/** The accept queue of a listening TCP socket: connections waiting to be accepted, and its limit. */
export interface ListenQueue {
  depth: number;
  limit: number;
}

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
  listenQueue(fd: number): ListenQueue | null;
  acceptAndClose(fd: number): number[];
  socketpair(): [number, number];
  sendFds(sock: number, fds: readonly number[], payload: Buffer): void;
  recvFds(sock: number): { data: Buffer; fds: number[] } | null;
  Watcher: new (fd: number, onEvent: WatchCallback) => Watcher;
  execve(
    path: string,
    argv: readonly string[],
    env: readonly string[],
    ignore: readonly number[],
    block: readonly number[],
  ): never;
  unblockSignals(signals: readonly number[]): number[];
  takeEarlySignals(signals: readonly number[]): number[] | null;
  holdSignals(signals: readonly number[]): void;
  releaseHeldSignals(): void;
  waitpid(pid: number): { pid: number; code: number | null; signal: number | null } | null;
  setCloexec(fd: number, on: boolean): void;
  getCloexec(fd: number): boolean;
  setNonblock(fd: number, on: boolean): void;
  getNonblock(fd: number): boolean;
  dup(fd: number): number;
  dup2(oldfd: number, newfd: number): void;
  close(fd: number): void;
  listFdsRaw(pid: number): RawFd[];
  sdNotify(socketPath: string, state: string): void;
  attachReuseportCbpf(fd: number, groupSize: number): void;
  detachReuseportBpf(fd: number): boolean;
  lockFile(path: string): number;
}

// The package root is the nearest directory up from this file holding
// binding.gyp: dist/src/native/addon.js when compiled, src/native/addon.ts from source.
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

export type AddonState =
  | { addon: Addon; reason?: undefined; preload?: string | undefined }
  | { addon?: undefined; reason: string; preload?: undefined };

/** The object preloaded into a hot restart's image (native/early_signals.cc), beside the addon. */
const PRELOAD_FILE = 'nserve_signals.so';

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
    const addon = require(file) as Addon;
    const preload = join(dirname(file), PRELOAD_FILE);
    return { addon, preload: existsSync(preload) ? preload : undefined };
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
/**
 * The shared object a hot restart preloads into its new image (LD_PRELOAD) so that a restart signal
 * during Node's start-up is recorded instead of fatal (native/early_signals.cc); undefined if absent.
 */
export const signalPreload: string | undefined = state.preload;

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
// place instead of a check in every function of the families.
/**
 * The loaded addon, for the syscall families in src/native/ only: they check
 * arguments before calling it. Everything else calls the checked functions.
 */
export const addon: Addon =
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
