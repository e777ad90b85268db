// The hand-off: everything that crosses a hot restart's execve (same PID), and every NSERVE_* name that
// one nserve process passes to another through the environment. This is the only module that spells
// those names.
//
// Invariant: at any moment one process image owns the listening sockets, and it is either serving them
// or execing into the image that will. Across the exec nothing is closed: the descriptors listed here
// (and only those) have FD_CLOEXEC cleared right before execve, and the new image sets it again on what
// it adopts. Connections that arrive meanwhile wait in the kernel's accept queues.
//
//   what                          how
//   listening sockets             fd numbers in `listeners` (FD_CLOEXEC cleared on exactly these)
//   cluster: worker channels      fd numbers in `workers` (the master's end of each SEQPACKET pair)
//   code generation               `generation` (cluster: of the workers handed over)
//   restart count and request     `restart`
//   restart history, start time   `history`, `startedAt` (stats survive the exec)
//   lifetime totals               `totals`: requests of processes gone, crashes, restarts by kind
//   leaks let through (warn)      `leaked` (the new image names them again)
//   metrics                       `metrics`: the --metrics-url listener (fd kept like `listeners`) and the
//                                 counter totals (metrics/store.ts owns their shape), so none goes back
//   the server's locks            `locks`: the flock'ed lock files beside --pidfile and --state (fd kept
//                                 like `listeners`): the lock belongs to the open file, so it is never let
//                                 go between the images and no second server can take it (control/lock.ts)
//   the way back                  `back`: the exact command line, cwd and kept fds of the old image, and
//                                 `directory` and `configFile`: the release and config it served (served
//                                 again after an exec back); `optimistic`: the new image guards its boot
//   the deploy record             `releases`: the release serving and the previous one (deploy/record.ts owns
//                                 the shape; an image without it starts a new record), and `pinned`: the
//                                 release a rollback restarts onto, instead of re-resolving --directory
//   the app's arguments           the command line itself (`-- ARGS`), as this image was started with it:
//                                 `NSERVE_ARGV`, kept before the app is given its own process.argv
//   stdio                         FD_CLOEXEC and O_NONBLOCK cleared on 0-2 (see exec.ts)
//   restart signals at start-up   LD_PRELOAD names nserve_signals.so (native/early_signals.cc), and the
//                                 restart signals are ignored and blocked across the execve: one that
//                                 arrives while Node starts is recorded, never fatal. The new image takes
//                                 its entry out of LD_PRELOAD first thing (the app and its children never
//                                 see it) and logs what was recorded (control/signals.ts)
//
// All of it travels in one variable, NSERVE_HANDOFF, as JSON with a version. An image that does not
// understand the version (a release that ships an older or newer nserve) reads only `back`, which every
// version keeps in the same shape, and execs back into the image that wrote it with
// NSERVE_HANDOFF_REJECTED set: the old code goes on serving and logs why the restart was abandoned.
import { NserveError } from '../errors.js';

/**
 * nserve's own command line (`node nserve.js start APP [options] [-- ARGS]`), kept as this module loads,
 * before any app does: loadApp gives the app `[node, APP, ...ARGS]` as process.argv, and workers, boot
 * checks and a hot restart's exec must run nserve's command line again, `-- ARGS` included.
 */
export const NSERVE_ARGV: readonly string[] = Object.freeze([...process.argv]);

/** Bumped whenever the hand-off's shape changes incompatibly. */
export const HANDOFF_VERSION = 1;
/** Bumped whenever the master–worker message vocabulary changes incompatibly. */
export const PROTOCOL_VERSION = 1;

/** Variables between the old image and the new one (same PID, across execve). */
export const HANDOFF_ENV = {
  handoff: 'NSERVE_HANDOFF',
  /** Set by a new image that could not read the hand-off, when it execs back. */
  rejected: 'NSERVE_HANDOFF_REJECTED',
} as const;

/**
 * The names an --env-file set (values stay in the environment itself): inherited by workers and across
 * the exec, so a key removed from the file is removed from the environment too (config/env-file.ts).
 */
export const ENV_FILE_KEYS = 'NSERVE_ENV_FILE_KEYS';

/** The dynamic loader's preload list (space- or colon-separated), which carries nserve_signals.so. */
export const PRELOAD_ENV = 'LD_PRELOAD';

/** `list` without any nserve_signals.so entry; undefined when nothing else is left. */
export function withoutPreload(list: string | undefined, file: string): string | undefined {
  const name = file.slice(file.lastIndexOf('/') + 1);
  const rest = (list ?? '').split(/[: ]+/).filter((e) => e !== '' && !e.endsWith(`/${name}`) && e !== name);
  return rest.length === 0 ? undefined : rest.join(' ');
}

/** `list` with `file` first (once), for the image an exec starts. */
export function withPreload(list: string | undefined, file: string): string {
  const rest = withoutPreload(list, file);
  return rest === undefined ? file : `${file} ${rest}`;
}

/** Variables from the master (or a server) to the processes it spawns. */
export const CHILD_ENV = {
  /** A boot-check child: `app` loads the app, `config` only reads the config and resolves the app. */
  bootCheck: 'NSERVE_BOOT_CHECK',
  workerIndex: 'NSERVE_WORKER',
  workerGeneration: 'NSERVE_GENERATION',
  workerDirectory: 'NSERVE_DIRECTORY',
  workerChannelFd: 'NSERVE_CHANNEL_FD',
  workerProtocol: 'NSERVE_PROTOCOL',
  /** A standby worker (--standby): its channel descriptor, on which it waits for its wake. */
  standby: 'NSERVE_STANDBY',
  /** A boot-check child for a rollback: the release directory to check instead of --directory's. */
  bootCheckDirectory: 'NSERVE_BOOT_CHECK_DIRECTORY',
} as const;

/**
 * What a process must not pass on: hand-off variables describe one image only, and socket activation is
 * consumed once (sd_listen_fds(unset_environment=1)); activated sockets travel in the hand-off.
 */
export const CONSUMED_ENV: readonly string[] = [
  HANDOFF_ENV.handoff,
  HANDOFF_ENV.rejected,
  CHILD_ENV.standby,
  'LISTEN_PID',
  'LISTEN_FDS',
  'LISTEN_FDNAMES',
];

export interface HandedListener {
  fd: number;
  /** Index among the reuseport slots of its bind. */
  slot: number;
  uri: string;
  /** From systemd socket activation (shared, never unlinked). */
  activated: boolean;
}

/** A worker handed from the old master image to the new one. */
export interface HandedWorker {
  index: number;
  pid: number;
  generation: number;
  /** The master's end of the worker's channel, kept open across the exec. */
  fd: number;
  directory: string;
  keys: string[];
  /** Slots sent to it and not confirmed yet: it may still say it accepts on them. */
  offered: string[];
  /** Already told to drain: it must never be lent a slot again. */
  draining: boolean;
  /** Reported booted (a worker of the next generation, spawned before the exec, may still be booting). */
  booted: boolean;
  protocol: number;
}

/** A lock file held for the server's life (control/lock.ts), kept open across the exec. */
export interface HandedLock {
  /** The lock file's path. */
  file: string;
  fd: number;
}

export interface ReturnPath {
  file: string;
  args: string[];
  cwd: string;
  /** The descriptors handed over, to keep open when execing back. */
  fds: number[];
}

export interface Handoff {
  v: number;
  back: ReturnPath;
  listeners: HandedListener[];
  workers: HandedWorker[];
  generation: number;
  restart: { count: number; requestedAt: number };
  /** The restart history (opaque here: history.ts owns its shape). */
  history: unknown[];
  /** Lifetime totals (history.ts owns the shape; an image without them counts from zero). */
  totals?: unknown;
  startedAt: string;
  leaked: { fd: number; kind: string; target: string }[];
  /** The release directory the old image served: where it returns to if the new image execs back. */
  directory: string;
  /** The metrics listener (FD_CLOEXEC cleared) and counter totals (opaque here: metrics/store.ts). */
  metrics?: { listener?: { fd: number; uri: string }; totals: unknown };
  /** The lock files the old image held (FD_CLOEXEC cleared), by path: adopted, never re-taken. */
  locks?: HandedLock[];
  /** The config file the old image read (resolved): what it reads again after an exec back. */
  configFile: string | null;
  /**
   * Single mode without --boot-check: the new code was not checked before the exec; until it serves,
   * the new image execs back on failure (guard.ts).
   */
  optimistic: boolean;
  /** The deploy record: serving and previous release (opaque here: deploy/record.ts; absent from older images). */
  releases?: unknown;
  /**
   * A rollback: the resolved release directory the new image (and its workers) serve, instead of
   * re-resolving --directory (whose `current` symlink still names the release rolled back from).
   */
  pinned?: string;
}

export function encodeHandoff(h: Omit<Handoff, 'v'>): Record<string, string> {
  return { [HANDOFF_ENV.handoff]: JSON.stringify({ v: HANDOFF_VERSION, ...h }) };
}

export type Decoded =
  | { kind: 'none' }
  | { kind: 'ok'; handoff: Handoff }
  /** Written by an nserve this image cannot read: exec back along `back` (if it could be read). */
  | { kind: 'foreign'; reason: string; back: ReturnPath | undefined };

export function decodeHandoff(env: NodeJS.ProcessEnv): Decoded {
  const raw = env[HANDOFF_ENV.handoff];
  if (raw === undefined || raw === '') return { kind: 'none' };
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    return { kind: 'foreign', reason: 'the hand-off is not JSON', back: undefined };
  }
  const obj = isObject(value) ? value : {};
  const back = readBack(obj.back);
  if (obj.v !== HANDOFF_VERSION) {
    return {
      kind: 'foreign',
      reason: `hand-off version ${JSON.stringify(obj.v)} (this nserve reads version ${HANDOFF_VERSION})`,
      back,
    };
  }
  const problem = shapeProblem(obj);
  if (problem !== undefined) return { kind: 'foreign', reason: `malformed hand-off: ${problem}`, back };
  const handoff = obj as unknown as Handoff;
  const unreadable = handoff.workers.find((w) => w.protocol !== PROTOCOL_VERSION);
  if (unreadable !== undefined) {
    return {
      kind: 'foreign',
      reason: `worker ${unreadable.index} speaks protocol ${unreadable.protocol} (this nserve speaks ${PROTOCOL_VERSION})`,
      back,
    };
  }
  return { kind: 'ok', handoff };
}

function shapeProblem(o: Record<string, unknown>): string | undefined {
  if (readBack(o.back) === undefined) return 'back';
  if (!Array.isArray(o.listeners) || !o.listeners.every(isListener)) return 'listeners';
  if (!Array.isArray(o.workers) || !o.workers.every(isWorker)) return 'workers';
  if (!isCount(o.generation)) return 'generation';
  const r = o.restart;
  if (!isObject(r) || !isCount(r.count) || !isCount(r.requestedAt)) return 'restart';
  if (!Array.isArray(o.history)) return 'history';
  if (o.totals !== undefined && !isObject(o.totals)) return 'totals';
  if (typeof o.startedAt !== 'string') return 'startedAt';
  if (!Array.isArray(o.leaked)) return 'leaked';
  if (typeof o.directory !== 'string') return 'directory';
  if (o.metrics !== undefined && !isMetrics(o.metrics)) return 'metrics';
  if (o.locks !== undefined && !(Array.isArray(o.locks) && o.locks.every(isLock))) return 'locks';
  if (o.configFile !== null && typeof o.configFile !== 'string') return 'configFile';
  if (typeof o.optimistic !== 'boolean') return 'optimistic';
  if (o.pinned !== undefined && (typeof o.pinned !== 'string' || !o.pinned.startsWith('/'))) return 'pinned';
  return undefined;
}

function readBack(v: unknown): ReturnPath | undefined {
  if (!isObject(v)) return undefined;
  const { file, args, cwd, fds } = v;
  if (typeof file !== 'string' || typeof cwd !== 'string') return undefined;
  if (!Array.isArray(args) || !args.every((a) => typeof a === 'string')) return undefined;
  if (!Array.isArray(fds) || !fds.every(isFd)) return undefined;
  return { file, args: args as string[], cwd, fds: fds as number[] };
}

function isListener(v: unknown): v is HandedListener {
  return (
    isObject(v) &&
    isFd(v.fd) &&
    isCount(v.slot) &&
    typeof v.uri === 'string' &&
    typeof v.activated === 'boolean'
  );
}

function isWorker(v: unknown): v is HandedWorker {
  return (
    isObject(v) &&
    isCount(v.index) &&
    isCount(v.pid) &&
    isCount(v.generation) &&
    isFd(v.fd) &&
    typeof v.directory === 'string' &&
    Array.isArray(v.keys) &&
    v.keys.every((k) => typeof k === 'string') &&
    Array.isArray(v.offered) &&
    v.offered.every((k) => typeof k === 'string') &&
    typeof v.draining === 'boolean' &&
    typeof v.booted === 'boolean' &&
    typeof v.protocol === 'number'
  );
}

function isLock(v: unknown): v is HandedLock {
  return isObject(v) && isFd(v.fd) && typeof v.file === 'string';
}

function isMetrics(v: unknown): boolean {
  if (!isObject(v) || !isObject(v.totals)) return false;
  const l = v.listener;
  return l === undefined || (isObject(l) && isFd(l.fd) && typeof l.uri === 'string');
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isCount(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

function isFd(v: unknown): v is number {
  return isCount(v) && v > 2;
}

/** A hand-off this image must refuse to act on (it was written by this very version, so it is a bug). */
export function handoffError(reason: string): NserveError {
  return new NserveError('ERR_NSERVE_INHERIT', `cannot adopt the previous image's sockets: ${reason}`);
}

/** What a worker reads from its environment. */
export interface WorkerIdentity {
  index: number;
  generation: number;
  directory: string | undefined;
  channelFd: number;
  protocol: number;
}

export function workerEnv(w: Omit<WorkerIdentity, 'protocol'>): Record<string, string> {
  return {
    [CHILD_ENV.workerIndex]: String(w.index),
    [CHILD_ENV.workerGeneration]: String(w.generation),
    [CHILD_ENV.workerDirectory]: w.directory ?? '',
    [CHILD_ENV.workerChannelFd]: String(w.channelFd),
    [CHILD_ENV.workerProtocol]: String(PROTOCOL_VERSION),
  };
}

/** The worker's identity, or undefined when this process is not a worker. */
export function readWorkerEnv(env: NodeJS.ProcessEnv): WorkerIdentity | undefined {
  const index = env[CHILD_ENV.workerIndex];
  if (index === undefined) return undefined;
  const dir = env[CHILD_ENV.workerDirectory];
  return {
    index: Number(index),
    generation: Number(env[CHILD_ENV.workerGeneration] ?? 0),
    directory: dir === undefined || dir === '' ? undefined : dir,
    channelFd: Number(env[CHILD_ENV.workerChannelFd] ?? 3),
    protocol: Number(env[CHILD_ENV.workerProtocol] ?? PROTOCOL_VERSION),
  };
}

/** A standby worker's channel descriptor, or undefined when this process is not a standby. */
export function readStandbyEnv(env: NodeJS.ProcessEnv): number | undefined {
  const v = env[CHILD_ENV.standby];
  return v !== undefined && /^\d+$/.test(v) && Number(v) > 2 ? Number(v) : undefined;
}

/** The worker index recorded in another process's environment (`nserve fds --pid`), if it is a worker. */
export function workerIndexFromEnviron(environ: readonly string[]): number | undefined {
  const prefix = `${CHILD_ENV.workerIndex}=`;
  const v = environ.find((e) => e.startsWith(prefix));
  return v === undefined ? undefined : Number(v.slice(prefix.length));
}

export type BootCheckWhat = 'app' | 'config';

/** The release a boot-check child checks when it is not --directory's (a rollback), if any. */
export function readBootCheckDirectory(env: NodeJS.ProcessEnv): string | undefined {
  const v = env[CHILD_ENV.bootCheckDirectory];
  return v === undefined || v === '' ? undefined : v;
}

export function readBootCheckEnv(env: NodeJS.ProcessEnv): BootCheckWhat | undefined {
  const v = env[CHILD_ENV.bootCheck];
  return v === 'app' || v === 'config' ? v : undefined;
}
