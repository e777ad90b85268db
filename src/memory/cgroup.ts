// The memory budget of the cgroup this process runs in, read the way a container runtime counts it:
// the effective limit (the smallest over the cgroup and its ancestors), the working set (usage minus
// inactive page cache, as kubelet evicts and the OOM killer reclaims), the OOM kills counted so far,
// and whether a kill can be aimed at one process at all (cgroup v2 `memory.oom.group`).
//
// Every path is under two roots (`/proc` and `/sys/fs/cgroup` by default) so that tests point the reader
// at fixture trees. Reads are small synchronous files in procfs/cgroupfs: they never block on I/O.
import * as fs from 'node:fs';
import * as path from 'node:path';

export interface CgroupRoots {
  /** Where procfs is mounted (`/proc`). */
  proc: string;
  /** Where the cgroup hierarchies are mounted (`/sys/fs/cgroup`). */
  sys: string;
}

export const SYSTEM_ROOTS: CgroupRoots = Object.freeze({ proc: '/proc', sys: '/sys/fs/cgroup' });

/**
 * v1 writes "no limit" as the page counter's maximum (9223372036854771712 on 4 kB pages), v2 as `max`.
 * Anything this large is no limit: the host's memory is.
 */
const UNLIMITED_FROM = 2 ** 60;

export interface MemoryBudget {
  /** Which hierarchy the numbers come from; `none`: no memory controller, the host's memory. */
  cgroup: 'v1' | 'v2' | 'none';
  /** The cgroup's path inside its hierarchy (`/` for none). */
  path: string;
  /** Bytes: the effective limit, or the host's memory when nothing limits the cgroup. */
  limit: number;
  /** A cgroup limit applies (false: `limit` is the host's memory). */
  limited: boolean;
  /** Bytes charged to the cgroup, page cache included (`memory.usage_in_bytes`, `memory.current`). */
  usage: number;
  /** Usage minus inactive file cache: what kubelet and the OOM killer count. */
  workingSet: number;
  /** limit − working set, at least 0. */
  headroom: number;
  /** OOM kills in the cgroup so far (`oom_kill` of memory.oom_control or memory.events); null if unknown. */
  oomKills: number | null;
  /** cgroup v2 `memory.oom.group=1` here or on an ancestor: an OOM kill ends every process of the group. */
  oomGroup: boolean;
  /** The directory of the cgroup's files (for messages; undefined for none). */
  dir?: string;
}

function read(file: string): string | undefined {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
}

/** A number file (`max` and absurdly large values are undefined: no limit). */
function readBytes(file: string): number | undefined {
  const text = read(file)?.trim();
  if (text === undefined || !/^\d+$/.test(text)) return undefined;
  const n = Number(text);
  return n >= UNLIMITED_FROM ? undefined : n;
}

/** `key value` lines (memory.stat, memory.events, memory.oom_control, /proc/PID/status-like). */
export function readKeyed(text: string | undefined): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of (text ?? '').split('\n')) {
    const m = /^([A-Za-z_]+):?\s+(\d+)/.exec(line);
    if (m !== null) out.set(m[1]!, Number(m[2]));
  }
  return out;
}

/** The memory controller's path for this process: `{ v1 }` or `{ v2 }` from /proc/self/cgroup. */
export function ownCgroup(procSelfCgroup: string): { version: 'v1' | 'v2'; path: string } | undefined {
  let unified: string | undefined;
  for (const line of procSelfCgroup.split('\n')) {
    const m = /^(\d+):([^:]*):(.*)$/.exec(line.trim());
    if (m === null) continue;
    if (m[2]!.split(',').includes('memory')) return { version: 'v1', path: m[3]! };
    if (m[1] === '0' && m[2] === '') unified = m[3]!;
  }
  return unified === undefined ? undefined : { version: 'v2', path: unified };
}

/**
 * The directory of `cgroupPath` under `mount`; a container without a cgroup namespace sees its own cgroup
 * mounted as the root while /proc/self/cgroup names the host's path: then the mount root is ours.
 */
function cgroupDir(mount: string, cgroupPath: string): string | undefined {
  const dir = path.join(mount, cgroupPath);
  if (fs.existsSync(dir)) return dir;
  return fs.existsSync(mount) ? mount : undefined;
}

/** The directory and its ancestors up to the mount, nearest first. */
function upToMount(dir: string, mount: string): string[] {
  const out = [dir];
  let d = dir;
  while (d !== mount && d.startsWith(`${mount}/`)) {
    d = path.dirname(d);
    out.push(d);
  }
  return out;
}

/** The host's memory (MemTotal) and what it uses (MemTotal − MemAvailable), from /proc/meminfo. */
function hostMemory(roots: CgroupRoots): { total: number; used: number } {
  const info = readKeyed(read(path.join(roots.proc, 'meminfo')));
  const total = (info.get('MemTotal') ?? 0) * 1024;
  const available = (info.get('MemAvailable') ?? 0) * 1024;
  return { total, used: Math.max(0, total - available) };
}

function budget(
  b: Omit<MemoryBudget, 'headroom' | 'limited' | 'limit'> & { limit: number | undefined },
  roots: CgroupRoots,
): MemoryBudget {
  const host = hostMemory(roots).total;
  // A limit above the host's memory limits nothing.
  const limited = b.limit !== undefined && (host === 0 || b.limit < host);
  const limit = limited ? b.limit! : host;
  return { ...b, limit, limited, headroom: Math.max(0, limit - b.workingSet) };
}

function readV1(cgroupPath: string, roots: CgroupRoots): MemoryBudget | undefined {
  const mount = path.join(roots.sys, 'memory');
  const dir = cgroupDir(mount, cgroupPath);
  if (dir === undefined || !fs.existsSync(path.join(dir, 'memory.usage_in_bytes'))) return undefined;
  const stat = readKeyed(read(path.join(dir, 'memory.stat')));
  // hierarchical_memory_limit is already the minimum over the ancestors; without it, walk up ourselves.
  let limit = stat.get('hierarchical_memory_limit');
  if (limit === undefined || limit >= UNLIMITED_FROM) {
    const limits = upToMount(dir, mount)
      .map((d) => readBytes(path.join(d, 'memory.limit_in_bytes')))
      .filter((n): n is number => n !== undefined);
    limit = limits.length === 0 ? undefined : Math.min(...limits);
  }
  const usage = readBytes(path.join(dir, 'memory.usage_in_bytes')) ?? 0;
  // kubelet on v1: usage − total_inactive_file (total_: this cgroup and its children).
  const inactive = stat.get('total_inactive_file') ?? stat.get('inactive_file') ?? 0;
  const oom = readKeyed(read(path.join(dir, 'memory.oom_control'))).get('oom_kill');
  return budget(
    {
      cgroup: 'v1',
      path: cgroupPath,
      dir,
      limit,
      usage,
      workingSet: Math.max(0, usage - inactive),
      oomKills: oom ?? null,
      oomGroup: false,
    },
    roots,
  );
}

function readV2(cgroupPath: string, roots: CgroupRoots): MemoryBudget | undefined {
  // A hybrid host mounts v2 at /sys/fs/cgroup/unified, usually without the memory controller.
  const mount = fs.existsSync(path.join(roots.sys, 'cgroup.controllers'))
    ? roots.sys
    : path.join(roots.sys, 'unified');
  const dir = cgroupDir(mount, cgroupPath);
  if (dir === undefined || !fs.existsSync(path.join(dir, 'memory.current'))) return undefined;
  const chain = upToMount(dir, mount);
  const limits = chain
    .map((d) => readBytes(path.join(d, 'memory.max')))
    .filter((n): n is number => n !== undefined);
  const usage = readBytes(path.join(dir, 'memory.current')) ?? 0;
  const inactive = readKeyed(read(path.join(dir, 'memory.stat'))).get('inactive_file') ?? 0;
  // memory.events is hierarchical on v2 (unless mounted with memory_localevents): kills in our subtree.
  const oom = readKeyed(read(path.join(dir, 'memory.events'))).get('oom_kill');
  // The kernel kills the whole group of the highest ancestor (up to the OOM domain) that sets it.
  const oomGroup = chain.some((d) => read(path.join(d, 'memory.oom.group'))?.trim() === '1');
  return budget(
    {
      cgroup: 'v2',
      path: cgroupPath,
      dir,
      limit: limits.length === 0 ? undefined : Math.min(...limits),
      usage,
      workingSet: Math.max(0, usage - inactive),
      oomKills: oom ?? null,
      oomGroup,
    },
    roots,
  );
}

/** The memory budget of this process's cgroup (the host's memory when there is no memory cgroup). */
export function readMemoryBudget(roots: CgroupRoots = SYSTEM_ROOTS): MemoryBudget {
  const own = ownCgroup(read(path.join(roots.proc, 'self/cgroup')) ?? '');
  const found =
    own === undefined ? undefined : own.version === 'v1' ? readV1(own.path, roots) : readV2(own.path, roots);
  if (found !== undefined) return found;
  const host = hostMemory(roots);
  return {
    cgroup: 'none',
    path: '/',
    limit: host.total,
    limited: false,
    usage: host.used,
    workingSet: host.used,
    headroom: Math.max(0, host.total - host.used),
    oomKills: null,
    oomGroup: false,
  };
}

/**
 * A process's anonymous memory (RssAnon, bytes): what a copy of it would need. RSS also counts the
 * shared file pages (the node binary, libraries) that a second process does not add; undefined if gone.
 */
export function readRssAnon(pid: number, roots: CgroupRoots = SYSTEM_ROOTS): number | undefined {
  const kb = readKeyed(read(path.join(roots.proc, String(pid), 'status'))).get('RssAnon');
  return kb === undefined ? undefined : kb * 1024;
}
