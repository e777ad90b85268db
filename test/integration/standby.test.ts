// --standby N: worker processes started ahead of need. A restart's new workers, and a crashed worker's
// replacement, are the standbys woken (their PIDs), with no failed request; another standby is started
// once they booted; a standby running older nserve code than what is installed is never woken; a stop
// leaves no process behind.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, type TestContext, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { ctl } from '../helpers/control.js';
import { getJson, Load, stopWithoutFailures } from '../helpers/load.js';
import { now } from '../helpers/logged-process.js';
import { makeReleases, versions } from '../helpers/releases.js';
import { restart } from '../helpers/restart.js';
import {
  CLI,
  childPids,
  killAll,
  processAlive,
  runNserve,
  type ServerProcess,
  serveCurrent,
  tmpDir,
  until,
} from '../helpers/server.js';

after(killAll);

/** The master's children whose title starts with `title` (`nserve standby`, `nserve worker`). */
function titled(master: number, title: string): number[] {
  return childPids(master).filter((pid) => {
    try {
      return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').startsWith(title);
    } catch {
      return false;
    }
  });
}

const standbyPids = (master: number): number[] => titled(master, 'nserve standby');

/** Once exactly the workers `pids` serve (the replaced ones gone). */
function servedBy(srv: ServerProcess, pids: readonly number[]): Promise<true> {
  const want = [...pids].sort().join(',');
  return until(`the workers to be ${want}`, () => titled(srv.pid, 'nserve worker').sort().join(',') === want);
}

/** Wait until `count` standbys run that are not among `not`; returns their PIDs. */
function standbysReady(srv: ServerProcess, count: number, not: readonly number[] = []): Promise<number[]> {
  return until(
    `${count} standby worker(s) started`,
    () => {
      const pids = standbyPids(srv.pid).filter((p) => !not.includes(p));
      return pids.length === count ? pids : undefined;
    },
    15_000,
  );
}

/** The PIDs of the workers the lines since `mark` say were woken standbys. */
function wokenSince(srv: ServerProcess, mark: number): number[] {
  return srv.lines
    .slice(mark)
    .filter((l) => l.event === 'worker.spawned' && l.standby === true)
    .map((l) => Number(l.workerPid));
}

async function serve(t: TestContext, standby: number, bootMs = 300) {
  const root = makeReleases(t, versions(3, { bootMs }), 'v1');
  const control = `unix://${path.join(tmpDir(t), 'control.sock')}`;
  const { srv, port } = await serveCurrent(t, root, {
    workers: 2,
    args: ['--standby', String(standby), '--control-url', control],
  });
  return { root, srv, port, control };
}

test('phased restart with --standby 1: each replacement is a woken standby, 0 failed requests, a standby again after', {
  timeout: 60_000,
}, async (t) => {
  const { root, srv, port, control } = await serve(t, 1);
  const [first] = await standbysReady(srv, 1);
  const stats = await ctl(['stats', '--control-url', control]);
  assert.match(stats.stdout, /^standby {4}1 ready$/m, stats.stdout);
  const load = new Load({ port, keepAlive: 3, newConnection: 2 });
  let mark = 0;
  try {
    await load.roundsSince(now(), 2);
    mark = srv.lines.length;
    await restart(srv, 'phased', { release: { root, version: 'v2' } });
    await load.roundsSince(now(), 2);
  } finally {
    await stopWithoutFailures(load, t);
  }
  const woken = wokenSince(srv, mark);
  assert.equal(woken.length, 2, 'both replacements were standbys');
  assert.equal(woken[0], first, 'the first replacement is the standby that waited');
  await servedBy(srv, woken);
  assert.equal((await getJson(port)).body.version, 'v2');
  const [again] = await standbysReady(srv, 1, woken);
  assert.ok(again !== undefined && !woken.includes(again));
  // A stop leaves nothing behind: workers and the idle standby.
  const all = childPids(srv.pid);
  srv.signal('SIGTERM');
  assert.equal((await srv.waitExit(20_000)).code, 0);
  for (const pid of all) await until(`process ${pid} to be gone`, () => !processAlive(pid));
});

test('cluster hot restart with --standby 2: the new generation is the standbys, 0 failed requests; new standbys after', {
  timeout: 60_000,
}, async (t) => {
  const { root, srv, port } = await serve(t, 2);
  const standbys = await standbysReady(srv, 2);
  const load = new Load({ port, keepAlive: 3, newConnection: 2 });
  try {
    await load.roundsSince(now(), 2);
    await restart(srv, 'hot', { release: { root, version: 'v2' } });
    await load.roundsSince(now(), 2);
  } finally {
    await stopWithoutFailures(load, t);
  }
  assert.equal((await getJson(port)).body.version, 'v2');
  // The new workers are the former standbys, and two new standbys wait.
  await servedBy(srv, standbys);
  await standbysReady(srv, 2, standbys);
});

test('a crashed worker is replaced by the standby', { timeout: 60_000 }, async (t) => {
  const { srv, port } = await serve(t, 1);
  const [standby] = await standbysReady(srv, 1);
  const victim = childPids(srv.pid).find((p) => p !== standby)!;
  process.kill(victim, 'SIGKILL');
  const replaced = await srv.waitForEvent('worker.replaced', 20_000);
  assert.equal(Number(replaced.workerPid), standby, `${JSON.stringify(replaced)}`);
  await standbysReady(srv, 1, [standby!]);
  // `nserve fds --pid` (read from /proc) lists the woken standby as the worker it became.
  const fds = execFileSync(process.execPath, [CLI, 'fds', '--pid', String(srv.pid), '--json'], {
    encoding: 'utf8',
    timeout: 15_000,
  });
  const procs = JSON.parse(fds) as { pid: number; role: string; index?: number }[];
  const workers = procs.filter((p) => p.role === 'worker');
  assert.equal(workers.length, 2, fds.slice(0, 300));
  const woken = workers.find((w) => w.pid === standby);
  assert.equal(
    woken?.index,
    Number(replaced.worker),
    `the woken standby is worker ${String(replaced.worker)}`,
  );
  assert.equal((await getJson(port)).status, 200);
});

test('a standby that runs older nserve code than what is installed now is not woken: discarded, a fresh worker starts', {
  timeout: 60_000,
}, async (t) => {
  const { root, srv } = await serve(t, 1);
  const [stale] = await standbysReady(srv, 1);
  // An install of another nserve changes the files' mtimes (cluster/standby-wake.ts codeStamp).
  const stamped = fileURLToPath(new URL('../../src/cluster/worker.js', import.meta.url));
  const { atime, mtime } = fs.statSync(stamped);
  fs.utimesSync(stamped, atime, new Date(mtime.getTime() + 60_000));
  t.after(() => fs.utimesSync(stamped, atime, mtime));
  const mark = srv.lines.length;
  await restart(srv, 'phased', { release: { root, version: 'v2' } });
  const discarded = srv.lines.slice(mark).find((l) => l.event === 'worker.standby.discarded');
  assert.equal(discarded?.reason, 'stale');
  assert.equal(Number(discarded?.workerPid), stale);
  assert.ok(!wokenSince(srv, mark).includes(stale!));
  await until('the stale standby to be gone', () => !processAlive(stale!));
});

test('--standby takes an integer from 0 to 64: anything else is refused in one line naming it', async () => {
  const r = await runNserve(['start', 'examples/hello.mjs', '-w', '2', '--standby', 'two']);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /^nserve: error: invalid --standby: "two": expected an integer from 0 to 64/);
  assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
});

test('with --standby, a worker boots even when its standby is killed while idle: it is started again', {
  timeout: 60_000,
}, async (t) => {
  const { srv } = await serve(t, 1);
  const [idle] = await standbysReady(srv, 1);
  process.kill(idle!, 'SIGKILL');
  const failed = await srv.waitForEvent('worker.standby.failed', 10_000);
  assert.match(String(failed.msg), /exited|killed/);
  await standbysReady(srv, 1, [idle!]);
});

test('a group SIGTERM (systemd KillMode=control-group) with --standby: slow requests in flight complete, exit 0, the standby gone quietly', {
  timeout: 60_000,
}, async (t) => {
  const { srv, port } = await serve(t, 1);
  await standbysReady(srv, 1);
  const all = childPids(srv.pid);
  const inFlight = Array.from({ length: 4 }, () => getJson(port, '/slow'));
  await new Promise((r) => setTimeout(r, 300));
  process.kill(-srv.pid, 'SIGTERM');
  const replies = await Promise.allSettled(inFlight);
  assert.deepEqual(
    replies.map((r) => (r.status === 'fulfilled' ? r.value.status : String(r.reason))),
    [200, 200, 200, 200],
  );
  assert.deepEqual(await srv.waitExit(20_000), { code: 0, signal: null });
  const noise = srv.lines.filter((l) => /^worker\.(standby\.|spawned)/.test(String(l.event)));
  assert.deepEqual(
    noise.slice(2).map((l) => l.msg),
    [],
    'nothing started, no standby failure logged',
  );
  for (const pid of all) await until(`process ${pid} to be gone`, () => !processAlive(pid));
});
