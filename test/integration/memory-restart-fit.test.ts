// nserve -w 4 in a real cgroup v1 memory cgroup of 1.5× its steady use, under load: a cluster hot restart
// whose 4 new workers do not fit beside the old ones runs staged (0 failed requests, no OOM kill), and a
// phased restart fits too; in a cgroup where not even one more worker fits, the restart is refused with
// its verdict, the old code serving.
//
// Needs a writable cgroup v1 memory hierarchy (/sys/fs/cgroup/memory, as root): skipped, with the
// reason, where there is none.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, type TestContext, test } from 'node:test';
import { inCgroup, MB, makeCgroup, oomKills, setLimit, whyNoCgroups, workingSet } from '../helpers/cgroup.js';
import { ctl } from '../helpers/control.js';
import { getJson, Load, stopWithoutFailures } from '../helpers/load.js';
import { now } from '../helpers/logged-process.js';
import { makeReleases, switchRelease } from '../helpers/releases.js';
import { signalRestart } from '../helpers/restart.js';
import {
  CLI,
  childPids,
  isEvent,
  killAll,
  ROOT,
  type ServerProcess,
  startCommand,
  tmpDir,
  until,
} from '../helpers/server.js';

after(killAll);

const NO_CGROUPS = whyNoCgroups();
/** Anonymous memory each worker's app holds (the pod held ~120 MB; less keeps the test light). */
const HOLD_MB = 64;

/** Releases v1…v3 whose app holds HOLD_MB as it loads. */
function releases(t: TestContext): string {
  const root = makeReleases(t, { v1: {}, v2: {}, v3: {} }, 'v1');
  for (const v of ['v1', 'v2', 'v3']) {
    const app = path.join(root, `releases/${v}/app.mjs`);
    fs.writeFileSync(
      app,
      `globalThis.held = Buffer.alloc(${HOLD_MB * MB}, 1);\n${fs.readFileSync(app, 'utf8')}`,
    );
  }
  return root;
}

function start(
  t: TestContext,
  cgroup: string,
  root: string,
  extra: readonly string[] = [],
): { srv: ServerProcess; sock: string } {
  const sock = path.join(tmpDir(t), 'control.sock');
  const [cmd, args] = inCgroup(cgroup, [
    process.execPath,
    CLI,
    'start',
    'app.mjs',
    '--directory',
    path.join(root, 'current'),
    '-w',
    '4',
    '--bind',
    'tcp://127.0.0.1:0',
    '--control-url',
    `unix://${sock}`,
    ...extra,
  ]);
  const srv = startCommand(cmd, args);
  t.after(() => srv.kill());
  return { srv, sock };
}

/** The strategy the memory plan chose for the last restart (its log line). */
function planned(srv: ServerProcess, from: number): Record<string, unknown> | undefined {
  return srv.lines
    .slice(from)
    .find((l) =>
      ['restart.memory.fits', 'restart.memory.overflow', 'restart.memory.concurrency-lowered'].includes(
        String(l.event),
      ),
    );
}

test('nserve -w 4 in a cgroup of 1.5× its steady use, under load: a hot restart runs staged and a phased restart fits, 0 failed requests, no OOM kill', {
  skip: NO_CGROUPS,
  timeout: 90_000,
}, async (t) => {
  const cgroup = makeCgroup(t, 2048 * MB);
  const root = releases(t);
  const { srv, sock } = start(t, cgroup, root);
  const port = await srv.port(20_000);
  const steady = workingSet(cgroup);
  setLimit(cgroup, Math.round(steady * 1.5));
  t.diagnostic(`steady ${Math.round(steady / MB)} MB, limit ${Math.round((steady * 1.5) / MB)} MB`);
  const load = new Load({ port, keepAlive: 3, newConnection: 2 });
  try {
    await load.roundsSince(now(), 2);
    switchRelease(root, 'v2');
    let mark = srv.lines.length;
    const hot = await signalRestart(srv, 'hot', { deadlineMs: 30_000 });
    assert.equal(hot.ok, true, `the hot restart ended with: ${String(hot.line.msg)}`);
    assert.equal(
      planned(srv, mark)?.strategy,
      'staged',
      '4 new workers beside 4 old ones do not fit in 1.5×',
    );
    assert.match(String(hot.line.msg), /staged: [1-3] of 4 booted before the old workers drained/);
    const stats = JSON.parse((await ctl(['stats', '--json', '--control-url', `unix://${sock}`])).stdout) as {
      restarts: { strategy?: string; outcome: string }[];
    };
    assert.equal(stats.restarts.at(-1)?.strategy, 'staged');
    await load.roundsSince(now(), 2);
    switchRelease(root, 'v3');
    mark = srv.lines.length;
    const phased = await signalRestart(srv, 'phased', { deadlineMs: 30_000 });
    assert.equal(phased.ok, true, `the phased restart ended with: ${String(phased.line.msg)}`);
    await load.roundsSince(now(), 2);
  } finally {
    await stopWithoutFailures(load, t);
  }
  assert.equal(oomKills(cgroup), 0, 'no process was OOM-killed');
  assert.equal(srv.lines.filter((l) => l.event === 'worker.oom-killed').length, 0);
  // A replaced worker exits just after it drained (the restart's done line does not wait for its exit).
  await until('the replaced workers to exit, 4 left', () => childPids(srv.pid).length === 4);
  assert.equal((await getJson(port)).body.version, 'v3');
});

test('a cgroup where not even one more worker fits: the hot restart is refused with its verdict, the old code serves', {
  skip: NO_CGROUPS,
  timeout: 60_000,
}, async (t) => {
  const cgroup = makeCgroup(t, 2048 * MB);
  const root = releases(t);
  const { srv } = start(t, cgroup, root);
  const port = await srv.port(20_000);
  const old = childPids(srv.pid);
  // Room for half a worker more.
  setLimit(cgroup, workingSet(cgroup) + (HOLD_MB / 2) * MB);
  const load = new Load({ port, keepAlive: 3, newConnection: 2 });
  let outcome: Awaited<ReturnType<typeof signalRestart>>;
  try {
    await load.roundsSince(now(), 2);
    switchRelease(root, 'v2');
    outcome = await signalRestart(srv, 'hot', { deadlineMs: 30_000 });
    await load.roundsSince(now(), 2);
  } finally {
    await stopWithoutFailures(load, t);
  }
  assert.equal(outcome.ok, false);
  assert.match(
    String(outcome.line.msg),
    /^hot restart refused, old workers keep serving: not even one new worker fits beside the old ones: 4 new workers need ~\d+ MB beside the old ones \(~\d+ MB each\), the headroom is \d+ MB/,
  );
  assert.equal(outcome.line.code, 'ERR_NSERVE_RESTART_NO_FIT');
  assert.equal(outcome.line.event, 'restart.hot.refused');
  assert.equal(oomKills(cgroup), 0, 'nothing was booted to be OOM-killed');
  assert.deepEqual(childPids(srv.pid), old, 'the old workers serve on');
  assert.equal((await getJson(port)).body.version, 'v1');
});

test('--restart-overflow phased: a hot restart that does not fit runs as a phased one, and ctl restart --wait says so', {
  skip: NO_CGROUPS,
  timeout: 60_000,
}, async (t) => {
  const cgroup = makeCgroup(t, 2048 * MB);
  const root = releases(t);
  const { srv, sock } = start(t, cgroup, root, ['--restart-overflow', 'phased']);
  const port = await srv.port(20_000);
  setLimit(cgroup, Math.round(workingSet(cgroup) * 1.5));
  const load = new Load({ port, keepAlive: 3, newConnection: 2 });
  try {
    await load.roundsSince(now(), 2);
    switchRelease(root, 'v2');
    const done = await ctl(['restart', '--wait', '--control-url', `unix://${sock}`]);
    assert.equal(done.code, 0, done.stderr);
    assert.match(
      done.stdout,
      /^phased restart #1 \(a hot restart run as a phased one: it did not fit in memory\) done in /m,
    );
    await load.roundsSince(now(), 2);
  } finally {
    await stopWithoutFailures(load, t);
  }
  assert.equal(oomKills(cgroup), 0);
  assert.equal((await getJson(port)).body.version, 'v2');
});

test('--worker-max-memory in a cgroup where the replacement does not fit beside the worker: it drains first, then is replaced, 0 failed, no OOM kill', {
  skip: NO_CGROUPS,
  timeout: 60_000,
}, async (t) => {
  const cgroup = makeCgroup(t, 2048 * MB);
  const [cmd, args] = inCgroup(cgroup, [
    process.execPath,
    CLI,
    'start',
    path.join(ROOT, 'test/fixtures/memory/grow.mjs'),
    '-w',
    '2',
    '--bind',
    'tcp://127.0.0.1:0',
    '--worker-max-memory',
    '100MB',
  ]);
  const srv = startCommand(cmd, args);
  t.after(() => srv.kill());
  const port = await srv.port(20_000);
  const load = new Load({ port, keepAlive: 1, newConnection: 1 });
  let fat = 0;
  try {
    await load.roundsSince(now(), 2);
    fat = Number((await getJson(port, '/')).body.pid);
    let kept = 0;
    await until(`worker ${fat} keeping 120 MB`, async () => {
      const a = await getJson(port, `/grow?pid=${fat}`);
      if (Number(a.body.pid) === fat) kept = Number(a.body.kept);
      return kept >= 3;
    });
    // Room for 64 MB more: not for a copy of a worker (the mean of 1 fat and 1 lean one, plus 10%: 80 MB
    // and more), and enough for what the load makes the heaps grow by before the master acts (3 check-ins
    // over the limit). Node 26's young generation grows by tens of MB under load: 20 MB, then 40 MB, were
    // not enough there, and the OOM killer took the fat worker first.
    setLimit(cgroup, workingSet(cgroup) + 64 * MB);
    const line = await srv.waitForEvent('worker.memory.exceeded', 15_000);
    assert.equal(line.workerPid, fat);
    assert.equal(line.strategy, 'drain-first', String(line.msg));
    await until(
      'the fat worker gone, two workers again',
      () => {
        const pids = childPids(srv.pid);
        return !pids.includes(fat) && pids.length === 2;
      },
      20_000,
    );
    await srv.waitForEvent('worker.replaced', 10_000);
    await load.roundsSince(now(), 2);
  } finally {
    await stopWithoutFailures(load, t);
  }
  assert.equal(oomKills(cgroup), 0, 'no process was OOM-killed');
  assert.equal(
    srv.lines.some((l) => isEvent(l, 'worker.exited')),
    false,
    'its exit is no crash',
  );
});
