// The memory budget readers on fixture trees (cgroup v1 and v2, and none), the OOM scores of each role,
// and how an OOM kill is told from nserve's own SIGKILLs.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { memoryLine } from '../../src/cli/ctl-format.js';
import { type CgroupRoots, readMemoryBudget, readRssAnon } from '../../src/memory/cgroup.js';
import { OomAim, oomScores } from '../../src/memory/oom.js';
import { tmpDir } from '../helpers/tmp.js';

const GB = 1024 ** 3;
const MB = 1024 ** 2;
const V1_UNLIMITED = '9223372036854771712';

/** A fixture tree: { 'proc/self/cgroup': '…', 'sys/memory/a/memory.limit_in_bytes': '…' }. */
function tree(t: test.TestContext, files: Record<string, string>): CgroupRoots {
  const root = tmpDir(t, 'nserve-cgroup-');
  const all = {
    'proc/meminfo': `MemTotal:       ${(16 * GB) / 1024} kB\nMemAvailable:   ${(10 * GB) / 1024} kB\n`,
    ...files,
  };
  for (const [file, text] of Object.entries(all)) {
    fs.mkdirSync(path.dirname(path.join(root, file)), { recursive: true });
    fs.writeFileSync(path.join(root, file), text);
  }
  return { proc: path.join(root, 'proc'), sys: path.join(root, 'sys') };
}

const v1 = (dir: string, f: Record<string, string>): Record<string, string> =>
  Object.fromEntries(Object.entries(f).map(([k, v]) => [`sys/memory${dir}/${k}`, v]));
const v2 = (dir: string, f: Record<string, string>): Record<string, string> =>
  Object.fromEntries(Object.entries(f).map(([k, v]) => [`sys${dir}/${k}`, v]));

test('cgroup v1: the hierarchical limit, the working set without inactive file cache, the OOM kills', (t) => {
  const roots = tree(t, {
    'proc/self/cgroup': '5:devices:/\n4:memory:/pod/app\n0::/\n',
    ...v1('/pod/app', {
      'memory.limit_in_bytes': V1_UNLIMITED,
      'memory.usage_in_bytes': String(600 * MB),
      'memory.stat': `inactive_file ${50 * MB}\nhierarchical_memory_limit ${GB}\ntotal_inactive_file ${100 * MB}\n`,
      'memory.oom_control': 'oom_kill_disable 0\nunder_oom 0\noom_kill 3\n',
    }),
  });
  const b = readMemoryBudget(roots);
  assert.equal(b.cgroup, 'v1');
  assert.equal(b.path, '/pod/app');
  assert.equal(b.limit, GB);
  assert.equal(b.limited, true);
  assert.equal(b.usage, 600 * MB);
  // kubelet's v1 working set: usage − total_inactive_file.
  assert.equal(b.workingSet, 500 * MB);
  assert.equal(b.headroom, GB - 500 * MB);
  assert.equal(b.oomKills, 3);
  assert.equal(b.oomGroup, false);
});

test('cgroup v1 without hierarchical_memory_limit: the smallest limit up the hierarchy', (t) => {
  const roots = tree(t, {
    'proc/self/cgroup': '4:memory:/pod/app\n',
    ...v1('', { 'memory.limit_in_bytes': V1_UNLIMITED }),
    ...v1('/pod', { 'memory.limit_in_bytes': String(2 * GB) }),
    ...v1('/pod/app', {
      'memory.limit_in_bytes': V1_UNLIMITED,
      'memory.usage_in_bytes': String(GB),
      'memory.stat': `total_inactive_file ${GB / 2}\n`,
    }),
  });
  const b = readMemoryBudget(roots);
  assert.equal(b.limit, 2 * GB);
  assert.equal(b.limited, true);
  assert.equal(b.workingSet, GB / 2);
  assert.equal(b.oomKills, null, 'no memory.oom_control: unknown, not 0');
});

test("cgroup v1's unlimited (~2^63) means the host's memory", (t) => {
  const roots = tree(t, {
    'proc/self/cgroup': '4:memory:/\n',
    ...v1('', {
      'memory.limit_in_bytes': V1_UNLIMITED,
      'memory.usage_in_bytes': String(GB),
      'memory.stat': `hierarchical_memory_limit ${V1_UNLIMITED}\ntotal_inactive_file 0\n`,
      'memory.oom_control': 'oom_kill 0\n',
    }),
  });
  const b = readMemoryBudget(roots);
  assert.equal(b.limited, false);
  assert.equal(b.limit, 16 * GB);
  assert.equal(b.headroom, 15 * GB);
  assert.match(memoryLine(b), /of 16\.0 GB \(host memory, no cgroup limit\)/);
});

test('a container without a cgroup namespace: its own cgroup is the mount root', (t) => {
  const roots = tree(t, {
    'proc/self/cgroup': '4:memory:/docker/0123abcd\n',
    ...v1('', {
      'memory.limit_in_bytes': String(512 * MB),
      'memory.usage_in_bytes': String(100 * MB),
      'memory.stat': `hierarchical_memory_limit ${512 * MB}\ntotal_inactive_file 0\n`,
    }),
  });
  assert.equal(readMemoryBudget(roots).limit, 512 * MB);
});

test('cgroup v2: memory.max up the hierarchy, inactive_file, memory.events, no oom.group', (t) => {
  const roots = tree(t, {
    'proc/self/cgroup': '0::/kubepods/pod1/ctr\n',
    ...v2('', { 'cgroup.controllers': 'cpu memory pids\n' }),
    ...v2('/kubepods', { 'memory.max': 'max\n' }),
    ...v2('/kubepods/pod1', { 'memory.max': `${827 * MB}\n`, 'memory.oom.group': '0\n' }),
    ...v2('/kubepods/pod1/ctr', {
      'memory.max': 'max\n',
      'memory.current': `${600 * MB}\n`,
      'memory.stat': `anon ${500 * MB}\nfile ${100 * MB}\nactive_file ${40 * MB}\ninactive_file ${60 * MB}\n`,
      'memory.events': 'low 0\nhigh 0\nmax 12\noom 2\noom_kill 2\noom_group_kill 0\n',
      'memory.oom.group': '0\n',
    }),
  });
  const b = readMemoryBudget(roots);
  assert.equal(b.cgroup, 'v2');
  assert.equal(b.limit, 827 * MB);
  assert.equal(b.limited, true);
  assert.equal(b.usage, 600 * MB);
  assert.equal(b.workingSet, 540 * MB);
  assert.equal(b.headroom, 287 * MB);
  assert.equal(b.oomKills, 2);
  assert.equal(b.oomGroup, false);
  assert.match(
    memoryLine(b),
    /^working set 540 MB of 827 MB limit \(cgroup v2\) · headroom 287 MB · OOM kills 2$/,
  );
});

test('cgroup v2: memory.oom.group=1 (Kubernetes) on the cgroup or an ancestor is detected', (t) => {
  const roots = tree(t, {
    'proc/self/cgroup': '0::/pod/ctr\n',
    ...v2('', { 'cgroup.controllers': 'memory\n' }),
    ...v2('/pod', { 'memory.max': `${GB}\n`, 'memory.oom.group': '1\n' }),
    ...v2('/pod/ctr', {
      'memory.max': 'max\n',
      'memory.current': `${GB / 4}\n`,
      'memory.events': 'oom_kill 0\n',
      'memory.oom.group': '0\n',
    }),
  });
  const b = readMemoryBudget(roots);
  assert.equal(b.oomGroup, true);
  assert.match(memoryLine(b), /memory\.oom\.group=1/);
});

test('cgroup v2 with no limit anywhere: the host memory; a hybrid host without v2 memory: none', (t) => {
  const unlimited = tree(t, {
    'proc/self/cgroup': '0::/\n',
    ...v2('', { 'cgroup.controllers': 'memory\n', 'memory.current': `${GB}\n`, 'memory.stat': '' }),
  });
  const b = readMemoryBudget(unlimited);
  assert.equal(b.cgroup, 'v2');
  assert.equal(b.limited, false);
  assert.equal(b.limit, 16 * GB);
  // v2 mounted at unified/ without the memory controller, no v1 memory line: the host's numbers.
  const hybrid = tree(t, {
    'proc/self/cgroup': '0::/user.slice\n',
    'sys/unified/user.slice/cgroup.procs': '',
  });
  const h = readMemoryBudget(hybrid);
  assert.equal(h.cgroup, 'none');
  assert.equal(h.limit, 16 * GB);
  assert.equal(h.workingSet, 6 * GB);
  assert.equal(h.oomKills, null);
});

test("a worker's need is its RssAnon, not its RSS", (t) => {
  const roots = tree(t, {
    'proc/42/status': 'Name:\tnode\nVmRSS:\t  120000 kB\nRssAnon:\t   80000 kB\nRssFile:\t   40000 kB\n',
  });
  assert.equal(readRssAnon(42, roots), 80000 * 1024);
  assert.equal(readRssAnon(43, roots), undefined);
});

test('OOM scores: booting first, then serving, the master last, never below its own', () => {
  assert.deepEqual(oomScores(0), { master: 0, serving: 100, booting: 1000 });
  assert.deepEqual(oomScores(-500), { master: -500, serving: -400, booting: 1000 });
  assert.deepEqual(oomScores(950), { master: 950, serving: 999, booting: 1000 });
  assert.deepEqual(oomScores(1000), { master: 1000, serving: 1000, booting: 1000 });
});

test('a SIGKILL is an OOM kill only when the cgroup counted one more; each count explains one death', (t) => {
  const files = {
    'proc/self/cgroup': '0::/ctr\n',
    'proc/self/oom_score_adj': '0\n',
    ...v2('', { 'cgroup.controllers': 'memory\n' }),
    ...v2('/ctr', {
      'memory.max': `${GB}\n`,
      'memory.current': `${GB / 2}\n`,
      'memory.events': 'oom_kill 1\n',
    }),
  };
  const roots = tree(t, files);
  const events = path.join(roots.sys, 'ctr/memory.events');
  const logged: unknown[] = [];
  const log = { warn: (...a: unknown[]) => logged.push(a) } as unknown as ConstructorParameters<
    typeof OomAim
  >[0];
  const aim = new OomAim(log, { roots });
  assert.equal(aim.judgeExit('SIGKILL').oom, false, 'a kill counted before nserve looked is not ours');
  fs.writeFileSync(events, 'oom_kill 3\n');
  assert.equal(aim.judgeExit('SIGTERM').oom, false);
  const first = aim.judgeExit('SIGKILL');
  assert.deepEqual(first, { oom: true, before: 1, after: 3, file: 'memory.events' });
  assert.equal(aim.judgeExit('SIGKILL').oom, true, 'two kills explain two deaths');
  assert.equal(aim.judgeExit('SIGKILL').oom, false, "a third SIGKILL is nserve's own");
  // After a hot restart's exec: the count the previous image had explained, not the one found now.
  const handed = new OomAim(log, { roots, seen: 2 });
  assert.equal(handed.judgeExit('SIGKILL').oom, true, "a kill during the exec is still a worker's");
  aim.announce();
  assert.equal(logged.length, 0, 'no oom.group: nothing to say');
});
