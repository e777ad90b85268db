// Memory cgroups (v1) made by a test: where they can be made, one below the test's own cgroup (so the
// machine's own limits still apply), emptied and removed when the test ends; and a command line that
// starts a process inside one.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { TestContext } from 'node:test';

export const MOUNT = '/sys/fs/cgroup/memory';
export const MB = 1024 ** 2;

/** Our own memory cgroup's directory (children go under it, so the machine's own limits still apply). */
export function ownCgroupDir(): string | undefined {
  const line = fs
    .readFileSync('/proc/self/cgroup', 'utf8')
    .split('\n')
    .find((l) => l.split(':')[1]?.split(',').includes('memory'));
  if (line === undefined) return undefined;
  const dir = path.join(MOUNT, line.slice(line.indexOf(':', line.indexOf(':') + 1) + 1));
  return fs.existsSync(dir) ? dir : undefined;
}

/** Why cgroups cannot be made here (tests skip with it), or undefined. */
export function whyNoCgroups(): string | undefined {
  if (!fs.existsSync(path.join(MOUNT, 'memory.limit_in_bytes')))
    return `no cgroup v1 memory controller at ${MOUNT}`;
  const parent = ownCgroupDir();
  if (parent === undefined) return 'this process is in no v1 memory cgroup that is mounted';
  try {
    fs.accessSync(parent, fs.constants.W_OK);
  } catch {
    return `${parent} is not writable (needs root)`;
  }
  return undefined;
}

let made = 0;

/** A child memory cgroup with `limit` bytes; emptied and removed when `t` ends. */
export function makeCgroup(t: Pick<TestContext, 'after'>, limit: number): string {
  const parent = ownCgroupDir()!;
  const dir = path.join(parent, `nserve-test-${process.pid}-${++made}`);
  fs.mkdirSync(dir);
  t.after(async () => {
    // Whatever still runs in it goes back to the parent (the server's own after hook kills it too).
    for (let i = 0; i < 50 && fs.existsSync(dir); i++) {
      for (const pid of fs.readFileSync(path.join(dir, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean)) {
        try {
          fs.writeFileSync(path.join(parent, 'cgroup.procs'), pid);
        } catch {
          // gone meanwhile
        }
      }
      try {
        fs.rmdirSync(dir);
      } catch {
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  });
  setLimit(dir, limit);
  return dir;
}

export function setLimit(dir: string, limit: number): void {
  fs.writeFileSync(path.join(dir, 'memory.limit_in_bytes'), String(limit));
}

export function readNumber(file: string): number {
  return Number(fs.readFileSync(file, 'utf8').trim());
}

/** What kubelet counts: usage − total_inactive_file. */
export function workingSet(dir: string): number {
  const stat = fs.readFileSync(path.join(dir, 'memory.stat'), 'utf8');
  const inactive = Number(/^total_inactive_file (\d+)$/m.exec(stat)?.[1] ?? 0);
  return readNumber(path.join(dir, 'memory.usage_in_bytes')) - inactive;
}

/** The cgroup's OOM kills so far (memory.oom_control). */
export function oomKills(dir: string): number {
  return Number(/^oom_kill (\d+)$/m.exec(fs.readFileSync(path.join(dir, 'memory.oom_control'), 'utf8'))?.[1]);
}

/** `/bin/sh -c` arguments that move the shell into `cgroup`, then exec `argv` (same PID). */
export function inCgroup(cgroup: string, argv: readonly string[]): [string, string[]] {
  return ['/bin/sh', ['-c', `echo $$ > ${cgroup}/cgroup.procs && exec "$@"`, 'sh', ...argv]];
}
