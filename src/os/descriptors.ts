// Descriptor inspection and leak analysis: which descriptors would survive a hot restart's execve,
// and what they are. Policy (close / warn / refuse) is applied by the restart code with these results.
import * as fs from 'node:fs';
import { formatAddress } from '../listen/bind-uri.js';
import { logEvent } from '../log/events.js';
import type { Logger } from '../log/logger.js';
import * as native from '../native/index.js';

/**
 * - `node`: Node's and libuv's own (epoll, eventfd, the self-pipes of signals and async wake-ups,
 *   /dev/null): hidden by `nserve fds` unless `--all`;
 * - `inherited`: open when this process image started, from whatever launched it (a shell, a supervisor,
 *   or the previous image of a hot restart): the launcher's business, not the app's;
 * - `lock`: the lock file beside --pidfile or --state, held for the server's life (control/lock.ts);
 * - `app`: opened since, by the app or its libraries.
 */
export type FdRole = 'stdio' | 'listener' | 'control' | 'lock' | 'channel' | 'node' | 'inherited' | 'app';

// ── what was open at start-up ──────────────────────────────────────────────────────────────────────────
// Taken first thing in `nserve start` (cli/start.ts), before nserve or the app opens anything: what is
// open then came from the launcher, or is Node's own.

let startup: Map<number, string> | undefined;

/** Record the descriptors open at start-up (best effort: without the addon nothing is recorded). */
export function noteStartupFds(): void {
  try {
    startup = new Map(native.listFds().map((f) => [f.fd, f.target]));
  } catch {
    startup = undefined;
  }
}

/** Node's and libuv's own descriptors, by what they are: anon inodes, a pipe with both ends here, /dev/null. */
function nodeInternal(info: native.FdInfo, pipeEnds: ReadonlyMap<number, number>): boolean {
  if (info.fd <= 2) return false;
  if (info.kind === 'anon_inode') return true;
  if (info.kind === 'pipe' && info.inode !== undefined && (pipeEnds.get(info.inode) ?? 0) > 1)
    return info.cloexec;
  return info.kind === 'char' && info.target === '/dev/null' && info.cloexec;
}

/** Was `info` open (the same thing under the same number) when this process image started? */
function inheritedAtStartup(info: native.FdInfo): boolean {
  return info.fd > 2 && startup?.get(info.fd) === info.target;
}

export interface FdEntry {
  fd: number;
  kind: native.FdKind;
  target: string;
  cloexec: boolean;
  role: FdRole;
  /** Survives the next hot restart's exec without being meant to. */
  wouldLeak: boolean;
}

/** Inodes of unix SOCK_SEQPACKET sockets (/proc/PID/net/unix type 0005): nserve's master–worker channels. */
export function seqpacketInodes(pid: number): Set<number> {
  const out = new Set<number>();
  try {
    for (const line of fs.readFileSync(`/proc/${pid}/net/unix`, 'utf8').split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/);
      if (cols[4] === '0005' && cols[6] !== undefined) out.add(Number(cols[6]));
    }
  } catch {
    // no unix table
  }
  return out;
}

export interface ProcessFds {
  pid: number;
  role: 'single' | 'master' | 'worker';
  index?: number;
  count: number;
  fds: FdEntry[];
  /** Descriptor count after each finished restart, oldest first (server/master only, via the control server). */
  history?: number[];
}

/** What a descriptor is, in words: path, socket address or peer, pipe. */
export function describe(info: native.FdInfo): string {
  if (info.kind === 'socket' && info.socket !== undefined) {
    // A socketpair end (master–worker channel) has no address.
    if (info.socket.family === 'unix' && info.socket.path === '') return `unnamed unix socket ${info.target}`;
    return `socket ${formatAddress(info.socket)}`;
  }
  return info.target;
}

/** Inodes of listening sockets of `pid` (TCP state LISTEN, unix __SO_ACCEPTCON), from /proc/PID/net. */
export function listeningInodes(pid: number): Set<number> {
  const out = new Set<number>();
  for (const table of ['tcp', 'tcp6']) {
    let text = '';
    try {
      text = fs.readFileSync(`/proc/${pid}/net/${table}`, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/);
      if (cols[3] === '0A' && cols[9] !== undefined) out.add(Number(cols[9]));
    }
  }
  try {
    for (const line of fs.readFileSync(`/proc/${pid}/net/unix`, 'utf8').split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/);
      if (cols[3] === '00010000' && cols[6] !== undefined) out.add(Number(cols[6]));
    }
  } catch {
    // no unix table: nothing to add
  }
  return out;
}

export interface KnownFds {
  /** Listening sockets nserve hands on across a hot restart. */
  listeners?: readonly number[];
  /** Worker channels (master side, or fd 3 in a worker). */
  channels?: readonly number[];
  control?: readonly number[];
  /** The server's lock files (control/lock.ts); read from outside, told by the flock they hold. */
  locks?: readonly number[];
}

/**
 * Read from outside (`nserve fds --pid`): the descriptors of `pid` that are a `*.lock` file on which it
 * holds a flock write lock (/proc/locks names the locker's PID and the inode), i.e. the server's locks.
 */
function heldLockFds(pid: number, infos: readonly native.FdInfo[]): number[] {
  const inodes = new Set<number>();
  try {
    for (const line of fs.readFileSync('/proc/locks', 'utf8').split('\n')) {
      const cols = line.trim().split(/\s+/);
      if (cols[1] === 'FLOCK' && cols[3] === 'WRITE' && Number(cols[4]) === pid)
        inodes.add(Number((cols[5] ?? '').split(':')[2]));
    }
  } catch {
    return [];
  }
  return infos
    .filter((f) => f.kind === 'file' && f.target.endsWith('.lock'))
    .filter((f) => {
      try {
        return inodes.has(fs.statSync(`/proc/${pid}/fd/${f.fd}`).ino);
      } catch {
        return false; // closed meanwhile
      }
    })
    .map((f) => f.fd);
}

export function inspect(pid: number, role: ProcessFds['role'], known: KnownFds, index?: number): ProcessFds {
  const self = pid === process.pid;
  const infos = native.listFds(self ? undefined : pid);
  // Listening sockets beyond the known ones: the dups the HTTP servers accept on, or the app's own.
  const listening = listeningInodes(pid);
  // The control server's connections share its socket's address.
  const controlTargets = new Set(infos.filter((f) => known.control?.includes(f.fd)).map(describe));
  // Read from outside (`nserve fds --pid`), the master's channels are told by their socket type.
  const seqpacket = known.channels === undefined ? seqpacketInodes(pid) : undefined;
  const locks = known.locks ?? (self ? [] : heldLockFds(pid, infos));
  const pipeEnds = new Map<number, number>();
  for (const f of infos)
    if (f.kind === 'pipe' && f.inode !== undefined) pipeEnds.set(f.inode, (pipeEnds.get(f.inode) ?? 0) + 1);
  const keep = new Set([...(known.listeners ?? []), ...(known.channels ?? [])]);
  const fds = infos.map((info): FdEntry => {
    let r: FdRole = 'app';
    if (info.fd <= 2) r = 'stdio';
    else if (known.listeners?.includes(info.fd)) r = 'listener';
    else if (known.channels?.includes(info.fd)) r = 'channel';
    else if (known.control?.includes(info.fd)) r = 'control';
    else if (locks.includes(info.fd)) r = 'lock';
    else if (info.inode !== undefined && listening.has(info.inode)) r = 'listener';
    else if (info.kind === 'socket' && controlTargets.has(describe(info))) r = 'control';
    else if (seqpacket !== undefined && info.inode !== undefined && seqpacket.has(info.inode)) r = 'channel';
    else if (nodeInternal(info, pipeEnds)) r = 'node';
    // Only this process knows what it started with (a worker starts with its channel and stdio only).
    else if (self && inheritedAtStartup(info)) r = 'inherited';
    const wouldLeak = role !== 'worker' && info.fd > 2 && !info.cloexec && !keep.has(info.fd);
    return {
      fd: info.fd,
      kind: info.kind,
      target: describe(info),
      cloexec: info.cloexec,
      role: r,
      wouldLeak,
    };
  });
  return { pid, role, ...(index === undefined ? {} : { index }), count: fds.length, fds };
}

/** Descriptors that would survive an exec though nobody meant them to. */
export function leakCandidates(keep: ReadonlySet<number>): native.FdInfo[] {
  return native.listFds().filter((f) => f.fd > 2 && !f.cloexec && !keep.has(f.fd));
}

export type LeakPolicy = 'close' | 'warn' | 'refuse';
export const LEAK_POLICIES: readonly LeakPolicy[] = ['close', 'warn', 'refuse'];

export interface LeakCheck {
  leaks: { fd: number; kind: string; target: string }[];
  /** Candidates before the hooks that a hook closed (nothing to report, but good to know). */
  closedByHooks: number[];
  /** The restart must not go on (policy refuse and something leaks). */
  refuse: boolean;
}

/**
 * Compare the candidates before and after the onRestart hooks, report what would leak, apply the policy.
 * `close` sets close-on-exec on each leak (so it cannot survive) and logs it; `warn` logs and lets it
 * survive; `refuse` logs and tells the caller to abandon the restart.
 */
export function checkLeaks(
  before: readonly native.FdInfo[],
  keep: ReadonlySet<number>,
  policy: LeakPolicy,
  log: Logger,
): LeakCheck {
  const after = leakCandidates(keep);
  const afterByFd = new Map(after.map((f) => [f.fd, f]));
  // A candidate the hooks closed (or whose number now names something else) is not a leak.
  const closedByHooks = before.filter((f) => afterByFd.get(f.fd)?.target !== f.target).map((f) => f.fd);
  const leaks = after.map((f) => ({ fd: f.fd, kind: f.kind, target: describe(f) }));
  const inherited = new Set(after.filter(inheritedAtStartup).map((f) => f.fd));
  for (const leak of leaks) {
    const fields = {
      code: 'ERR_NSERVE_FD_LEAK',
      ...leak,
      policy,
      ...(inherited.has(leak.fd) ? { inherited: true } : {}),
    };
    const hint = inherited.has(leak.fd)
      ? 'it was open when nserve started (inherited from the launching process, not opened by the app): fix the launcher (close it, or open it close-on-exec), or choose --leak-policy'
      : 'close it in an onRestart hook, or open it close-on-exec';
    if (policy === 'close') {
      native.setCloexec(leak.fd, true);
      logEvent(
        log,
        'fds.leak.closed',
        fields,
        `descriptor ${leak.fd} (${leak.kind} ${leak.target}) would have leaked into the restarted process: closed it at the exec; ${hint}`,
      );
    } else if (policy === 'warn') {
      logEvent(
        log,
        'fds.leak.found',
        fields,
        `descriptor ${leak.fd} (${leak.kind} ${leak.target}) leaks into the restarted process (leakPolicy warn); ${hint}`,
      );
    } else {
      logEvent(
        log,
        'fds.leak.refused',
        fields,
        `descriptor ${leak.fd} (${leak.kind} ${leak.target}) would leak into the restarted process; ${hint}`,
      );
    }
  }
  return { leaks, closedByHooks, refuse: policy === 'refuse' && leaks.length > 0 };
}

/** In the new image: log every descriptor the previous image let leak that is still open here. */
export function reportInheritedLeaks(leaks: LeakCheck['leaks'], log: Logger): void {
  if (leaks.length === 0) return;
  const open = new Set(native.listFds().map((f) => f.fd));
  for (const leak of leaks) {
    if (!open.has(leak.fd)) continue;
    logEvent(
      log,
      'fds.leak.inherited',
      { code: 'ERR_NSERVE_FD_LEAK', ...leak },
      `descriptor ${leak.fd} (${leak.kind} ${leak.target}) leaked from the previous image`,
    );
  }
}

/** Warn when the descriptor count grew over the last restarts (a leak that survives exec, or in the app). */
export function warnOnGrowth(counts: readonly number[], log: Logger): void {
  const recent = counts.slice(-4);
  if (recent.length < 3) return;
  const growing = recent.every((c, i) => i === 0 || c > recent[i - 1]!);
  if (growing) {
    logEvent(
      log,
      'fds.count.growing',
      { code: 'ERR_NSERVE_FD_GROWTH', counts: recent },
      `descriptor count grows across restarts: ${recent.join(' → ')}`,
    );
  }
}

/** Without `all`: Node's own descriptors left out (the count still says how many there are). */
export function withoutNodeFds(procs: readonly ProcessFds[], all: boolean): ProcessFds[] {
  if (all) return [...procs];
  return procs.map((p) => ({ ...p, fds: p.fds.filter((f) => f.role !== 'node') }));
}

export function formatFdTable(procs: readonly ProcessFds[]): string {
  const lines: string[] = [];
  for (const p of procs) {
    const leaking = p.fds.filter((f) => f.wouldLeak).length;
    const hidden = p.count - p.fds.length;
    lines.push(
      `${p.role}${p.index === undefined ? '' : ` ${p.index}`} pid ${p.pid}: ${p.count} descriptors${leaking > 0 ? `, ${leaking} would leak on the next hot restart` : ''}${hidden > 0 ? ` (${hidden} of Node's own not shown: --all)` : ''}`,
    );
    if (p.history !== undefined && p.history.length > 0) {
      lines.push(`  descriptor count after each restart: ${p.history.join(' → ')}`);
    }
    lines.push('  fd  role       kind        cloexec  target');
    for (const f of p.fds) {
      const leak = f.wouldLeak
        ? f.role === 'inherited'
          ? '   <- LEAK: survives a hot restart (inherited from the launcher: fix it there, or --leak-policy)'
          : '   <- LEAK: survives a hot restart'
        : '';
      lines.push(
        `  ${String(f.fd).padStart(3)} ${f.role.padEnd(10)} ${f.kind.padEnd(11)} ${(f.cloexec ? 'yes' : 'no').padEnd(8)} ${f.target}${leak}`,
      );
    }
  }
  return lines.join('\n');
}
