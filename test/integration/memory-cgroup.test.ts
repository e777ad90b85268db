// nserve -w 2 inside a real cgroup v1 memory cgroup made by the test: the budget it reads, the OOM scores
// of each role, and a hot restart whose new workers run the cgroup out of memory.
//
// Needs a writable cgroup v1 memory hierarchy (/sys/fs/cgroup/memory, as root): skipped, with the
// reason, where there is none. Each cgroup is emptied (processes moved to its parent) and removed at the
// end of its test, even when the test fails.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, type TestContext, test } from 'node:test';
import { MB, makeCgroup, readNumber, setLimit, whyNoCgroups } from '../helpers/cgroup.js';
import { ctl } from '../helpers/control.js';
import { assertNoFailedRequests, getJson, Load, stopAndReport } from '../helpers/load.js';
import { now } from '../helpers/logged-process.js';
import { makeReleases, switchRelease } from '../helpers/releases.js';
import { signalRestart } from '../helpers/restart.js';
import {
  CLI,
  childPids,
  isEvent,
  killAll,
  processAlive,
  ROOT,
  type ServerProcess,
  startCommand,
  tmpDir,
  until,
} from '../helpers/server.js';

after(killAll);

const NO_CGROUPS = whyNoCgroups();

const oomScoreAdj = (pid: number): number => readNumber(`/proc/${pid}/oom_score_adj`);

/** `nserve start` -w 2 with a control server, moved into `cgroup` before Node starts (same PID: exec). */
function startInCgroup(
  t: TestContext,
  cgroup: string,
  directory: string,
): { srv: ServerProcess; sock: string } {
  const sock = path.join(tmpDir(t), 'control.sock');
  const srv = startCommand('/bin/sh', [
    '-c',
    `echo $$ > ${cgroup}/cgroup.procs && exec "$@"`,
    'sh',
    process.execPath,
    CLI,
    'start',
    'app.mjs',
    '--directory',
    directory,
    '-w',
    '2',
    '--bind',
    'tcp://127.0.0.1:0',
    '--control-url',
    `unix://${sock}`,
  ]);
  t.after(() => srv.kill());
  return { srv, sock };
}

test("nserve -w 2 in a memory cgroup: ctl stats shows its limit; booting workers are the OOM killer's first choice, the master its last", {
  skip: NO_CGROUPS,
}, async (t) => {
  const cgroup = makeCgroup(t, 1024 * MB);
  const root = makeReleases(t, { v1: { bootMs: 2000 } }, 'v1');
  const { srv, sock } = startInCgroup(t, cgroup, path.join(root, 'current'));
  await until(
    'the server in the test cgroup',
    () => fs.readFileSync(`/proc/${srv.pid}/cgroup`, 'utf8').includes(path.basename(cgroup)),
    5000,
  );
  const master = oomScoreAdj(srv.pid);
  // While they boot (2 s), the workers stand first in the OOM killer's line.
  const booting = await until(
    '2 booting workers',
    () => {
      const pids = childPids(srv.pid);
      return pids.length === 2 ? pids : undefined;
    },
    5000,
  );
  await until(
    'booting workers at oom_score_adj 1000',
    () => booting.every((p) => oomScoreAdj(p) === 1000),
    1000,
  );
  await srv.port(20_000);
  const serving = booting.map(oomScoreAdj);
  assert.deepEqual(serving, [master + 100, master + 100], 'serving workers between the master and a boot');
  assert.equal(oomScoreAdj(srv.pid), master, 'the master keeps its own score');
  const stats = await ctl(['stats', '--control-url', `unix://${sock}`]);
  assert.equal(stats.code, 0, stats.stderr);
  assert.match(
    stats.stdout,
    /^memory +working set \d+ MB of 1\.0 GB limit \(cgroup v1\) · headroom \d+ MB · hot restart needs ~\d+ MB: fits/m,
  );
  assert.match(stats.stdout, /\bANON\b/);
  const json = JSON.parse((await ctl(['stats', '--json', '--control-url', `unix://${sock}`])).stdout) as {
    memory: { limit: number; limited: boolean; workingSet: number; headroom: number; oomKills: number };
    workers: { anon: number; rss: number }[];
  };
  assert.equal(json.memory.limit, 1024 * MB);
  assert.equal(json.memory.limited, true);
  assert.equal(json.memory.headroom, json.memory.limit - json.memory.workingSet);
  assert.equal(json.memory.oomKills, 0);
  for (const w of json.workers) assert.ok(w.anon > 0 && w.anon < w.rss, `anon ${w.anon} < rss ${w.rss}`);
  const status = await ctl(['status', '--control-url', `unix://${sock}`]);
  assert.match(status.stdout, /^memory working set .* of 1\.0 GB limit \(cgroup v1\)/m);
});

test('a hot restart whose new workers run the cgroup out of memory: a booting worker is OOM-killed, the restart abandoned, no request fails unless the kernel takes a serving worker too (named, replaced)', {
  skip: NO_CGROUPS,
}, async (t) => {
  const cgroup = makeCgroup(t, 1024 * MB);
  const root = makeReleases(t, { v1: {}, v2: { bootMs: 10_000 } }, 'v1');
  // v2 takes 300 MB of anonymous memory as it loads, then keeps booting.
  const v2 = path.join(root, 'releases/v2/app.mjs');
  fs.writeFileSync(v2, `globalThis.hog = Buffer.alloc(${300 * MB}, 1);\n${fs.readFileSync(v2, 'utf8')}`);
  const { srv } = startInCgroup(t, cgroup, path.join(root, 'current'));
  const port = await srv.port(20_000);
  const old = childPids(srv.pid);
  // Room for the old code and some, not for a 300 MB boot.
  const workingSet = readNumber(path.join(cgroup, 'memory.usage_in_bytes'));
  setLimit(cgroup, workingSet + 150 * MB);
  const load = new Load({ port, keepAlive: 3, newConnection: 2 });
  await load.roundsSince(now(), 2);
  switchRelease(root, 'v2');
  const outcome = await signalRestart(srv, 'hot', { deadlineMs: 30_000 });
  await load.roundsSince(now(), 3);
  const result = await stopAndReport(load, t);
  assert.equal(outcome.ok, false, `the restart ended with: ${String(outcome.line.msg)}`);
  assert.match(
    String(outcome.line.msg),
    /^hot restart abandoned, old workers keep serving: worker \d was killed by the OOM killer while booting \(SIGKILL; oom_kill \d+ → \d+ in the cgroup's memory\.oom_control\)/,
  );
  const kills = Number(
    /^oom_kill (\d+)$/m.exec(fs.readFileSync(path.join(cgroup, 'memory.oom_control'), 'utf8'))?.[1],
  );
  // The kernel may take a serving worker as well, and nserve cannot prevent it: a killed process leaves
  // the cgroup's task list before its memory is given back, and an allocation in between (the master's
  // own start-up after its exec) finds the cgroup still full and no booting worker left to kill. Seen
  // once in CI on Node 26 (dmesg): both booting workers killed (+0, +50 ms), then a serving one (+56 ms),
  // with the cgroup at its 205 MB limit and its live processes holding 49 MB of it. What nserve owes
  // then: to name the kill, replace the worker, and lose no more than the requests it held.
  const servingKilled = srv.lines.filter(
    (l) => isEvent(l, 'worker.oom-killed') && old.includes(Number(l.workerPid)),
  );
  if (servingKilled.length === 0) {
    assertNoFailedRequests(result);
    // The old workers served throughout, and still do, on the old code.
    assert.deepEqual(
      childPids(srv.pid).filter((p) => old.includes(p)),
      old,
    );
  } else {
    t.diagnostic(
      `the kernel also killed serving worker(s) ${servingKilled.map((l) => l.workerPid).join(', ')}`,
    );
    assert.ok(kills >= 2, `a booting and a serving worker: oom_kill ${kills}`);
    assert.ok(
      result.failures.every((f) => f.kind === 'reset') && result.failed <= 5 * servingKilled.length,
      `only the requests the killed worker held (5 clients): ${JSON.stringify(result.byKind)}`,
    );
    await until('a replacement for the killed serving worker', () => childPids(srv.pid).length === 2, 15_000);
  }
  assert.equal((await getJson(port)).body.version, 'v1');
});

test('a serving worker that runs the cgroup out of memory is logged as killed by the OOM killer, not as a crash, and replaced', {
  skip: NO_CGROUPS,
}, async (t) => {
  const cgroup = makeCgroup(t, 1024 * MB);
  const app = tmpDir(t);
  fs.copyFileSync(path.join(ROOT, 'test/fixtures/memory/grow.mjs'), path.join(app, 'app.mjs'));
  const { srv } = startInCgroup(t, cgroup, app);
  const port = await srv.port(20_000);
  setLimit(cgroup, readNumber(path.join(cgroup, 'memory.usage_in_bytes')) + 100 * MB);
  const [victim] = childPids(srv.pid);
  // 40 MB at a time, until the cgroup runs out: the kernel kills the worker that grew (or the request fails).
  const killed = (): boolean => srv.lines.some((l) => l.event === 'worker.oom-killed');
  for (let i = 0; i < 40 && !killed(); i++) {
    try {
      await getJson(port, `/grow?pid=${victim}`);
    } catch {
      // the worker holding this connection was killed
    }
  }
  const line = await srv.waitForEvent('worker.oom-killed', 10_000);
  assert.equal(line.event, 'worker.oom-killed');
  assert.equal(line.workerPid, victim);
  assert.deepEqual([line.signal, line.oomKills], ['SIGKILL', 1]);
  assert.equal(
    srv.lines.some((l) => isEvent(l, 'worker.exited')),
    false,
    'not logged as a crash',
  );
  assert.ok(processAlive(srv.pid), 'the master lives on');
  await until(
    'a replacement for the killed worker',
    () => {
      const pids = childPids(srv.pid);
      return pids.length === 2 && !pids.includes(victim!);
    },
    15_000,
  );
});
