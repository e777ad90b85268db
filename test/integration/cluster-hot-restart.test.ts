import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { after, test } from 'node:test';
import { assertNoFailedRequests, getJson, Load, stopWithoutFailures } from '../helpers/load.js';
import { now } from '../helpers/logged-process.js';
import { makeReleases, switchRelease, versions } from '../helpers/releases.js';
import { type RestartKind, restart } from '../helpers/restart.js';
import { childPids, killAll, replacedWorkers, serveApp, serveCurrent, until } from '../helpers/server.js';

after(killAll);

const BOOT_MS = 1500;

function fdCount(pid: number): number {
  return fs.readdirSync(`/proc/${pid}/fd`).length;
}

/**
 * The count once a just-booted master has settled: the same in two readings 300 ms apart. Right after
 * boot a descriptor may still be open for a moment (a file being read), which the count after the
 * restarts would then lack.
 */
async function settledFdCount(pid: number): Promise<number> {
  let last = fdCount(pid);
  for (let i = 0; i < 20; i++) {
    await new Promise((r) => setTimeout(r, 300));
    const now = fdCount(pid);
    if (now === last) return now;
    last = now;
  }
  return last;
}

test('cluster hot restart under load: no failed request, no stall for the boot, no overlap of versions', async (t) => {
  const root = makeReleases(t, versions(4, { bootMs: BOOT_MS }), 'v1');
  const { srv, port } = await serveCurrent(t, root, { workers: 2 });
  const load = new Load({ port, keepAlive: 6, newConnection: 3, post: 2 });
  let workers = childPids(srv.pid);
  assert.equal(workers.length, 2);
  const masterPid = srv.pid;
  try {
    for (let v = 2; v <= 4; v++) {
      await load.roundsSince(now(), 3);
      const { line: done } = await restart(srv, 'hot', {
        release: { root, version: `v${v}` },
        deadlineMs: 30_000,
      });
      t.diagnostic(`restart to v${v}: pause ${done.pauseMs} ms, signal to done ${done.restartMs} ms`);
      workers = await replacedWorkers(masterPid, workers, 2, 10_000);
      assert.equal((await getJson(port)).body.version, `v${v}`);
    }
    await load.roundsSince(now(), 3);
  } finally {
    const result = await stopWithoutFailures(load, t);
    assert.ok(result.maxMs < BOOT_MS / 2, `no request waited for the boot (max ${result.maxMs} ms)`);
    // Old and new code never serve side by side: once vN answered, v(N-1) never answers again.
    const byTime = [...result.done].sort((a, b) => a.end - b.end);
    for (let v = 2; v <= 4; v++) {
      const first = byTime.find((s) => s.version === `v${v}`);
      assert.ok(first !== undefined, `v${v} answered under load`);
      // A request sent after new code had answered is never answered by old code. (Response end times
      // of concurrent requests can be observed out of order by the client; send times cannot.)
      const later = byTime.filter((s) => s.start > first.end && s.version === `v${v - 1}`);
      assert.equal(
        later.length,
        0,
        `v${v - 1} answered after v${v} had: ${JSON.stringify(later.slice(0, 3))}`,
      );
    }
    assert.ok(!result.done.some((s) => s.pid === masterPid), 'the master never answers');
  }
  assert.equal(srv.pid, masterPid);
  srv.signal('SIGTERM');
  assert.deepEqual(await srv.waitExit(15000), { code: 0, signal: null });
});

test('cluster hot restart of a release that throws at load: old workers keep serving, error reported', async (t) => {
  const root = makeReleases(t, { good: {}, broken: { throwAtLoad: true } }, 'good');
  const { srv, port } = await serveCurrent(t, root, { workers: 2 });
  const workers = childPids(srv.pid);
  const load = new Load({ port, keepAlive: 3, newConnection: 2, post: 1 });
  switchRelease(root, 'broken');
  srv.signal('SIGUSR2');
  const line = await srv.waitForEvent('restart.hot.abandoned', 20000);
  assert.match(String(line.msg), /broken at load/);
  await load.roundsSince(now(), 5);
  const result = await load.stop();
  assertNoFailedRequests(result);
  await until('the failed new workers to be gone', () => childPids(srv.pid).length === 2);
  assert.deepEqual(childPids(srv.pid), workers, 'the old workers still serve');
  assert.equal((await getJson(port)).body.version, 'good');
  // and the server can still restart once the release is fixed
  await restart(srv, 'hot', { release: { root, version: 'good' } });
});

for (const kind of ['hot', 'phased'] as RestartKind[]) {
  test(`10 cluster ${kind} restarts: master descriptors and live processes stay flat`, async (t) => {
    const { srv, port } = await serveApp(t, 'examples/hello.mjs', { workers: 2 });
    const fdsBefore = await settledFdCount(srv.pid);
    for (let i = 1; i <= 10; i++) {
      await restart(srv, kind);
      await until('two live workers', () => childPids(srv.pid).length === 2, 10000);
    }
    await until('no zombie or extra process', () => childPids(srv.pid).length === 2);
    // The last old workers may still be closing their channels (they exit after reporting drained):
    // the count must come back to where it was, and stay there.
    let fdsAfter = 0;
    try {
      await until(
        'the master descriptor count to settle',
        () => {
          fdsAfter = fdCount(srv.pid);
          return fdsAfter === fdsBefore;
        },
        5000,
      );
    } finally {
      assert.equal(fdsAfter, fdsBefore, `master fds ${fdsBefore} → ${fdsAfter}`);
    }
    // A duration is the point here: the count must not drift back up once it has settled.
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(fdCount(srv.pid), fdsBefore, 'and stays there');
    assert.equal((await getJson(port)).status, 200);
  });
}
