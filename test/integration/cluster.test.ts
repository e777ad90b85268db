import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as path from 'node:path';
import { after, test } from 'node:test';
import { assertNoFailedRequests, getJson, Load, stopWithoutFailures } from '../helpers/load.js';
import { now } from '../helpers/logged-process.js';
import { makeReleases, switchRelease, versions, writeRelease } from '../helpers/releases.js';
import { restart } from '../helpers/restart.js';
import {
  childPids,
  isEvent,
  killAll,
  processAlive,
  ROOT,
  replacedWorkers,
  serveApp,
  serveCurrent,
  startApp,
  tmpDir,
  until,
} from '../helpers/server.js';

after(killAll);

const BOOT_MS = 1000;

async function phasedUnderLoad(
  t: import('node:test').TestContext,
  workers: number,
  restarts: number,
): Promise<void> {
  const root = makeReleases(t, versions(restarts + 1, { bootMs: BOOT_MS }), 'v1');
  const { srv, port } = await serveCurrent(t, root, { workers });
  const load = new Load({ port, keepAlive: 4, newConnection: 2 });
  let before = childPids(srv.pid);
  assert.equal(before.length, workers);
  try {
    for (let v = 2; v <= restarts + 1; v++) {
      await load.roundsSince(now(), 3);
      const { lines } = await restart(srv, 'phased', {
        release: { root, version: `v${v}` },
        deadlineMs: 30_000,
      });
      const replaced = lines.filter((l) => isEvent(l, 'restart.phased.worker-replaced'));
      assert.equal(replaced.length, workers);
      before = await replacedWorkers(srv.pid, before, workers, 10_000);
      await until(`v${v} to answer`, async () => (await getJson(port)).body.version === `v${v}`, 5000);
    }
    await load.roundsSince(now(), 3);
  } finally {
    const result = await stopWithoutFailures(load, t);
    // No request waited for a booting worker: each new worker answers only requests that started once it
    // had booted (its "worker booted" line, as read here: up to WAIT_SLACK_MS late on a loaded machine).
    // A request queued for a booting worker would have started up to BOOT_MS before.
    const WAIT_SLACK_MS = 200;
    const bootedAt = new Map<number, number>();
    for (const l of srv.lines)
      if (isEvent(l, 'worker.booted') && typeof l.pid === 'number') bootedAt.set(l.pid, srv.receivedAt(l));
    const early = result.done.filter((d) => d.start < (bootedAt.get(d.pid) ?? 0) - WAIT_SLACK_MS);
    t.diagnostic(`longest request ${result.maxMs} ms; ${bootedAt.size} workers booted`);
    assert.deepEqual(early, [], 'no request waited for a booting worker');
    assert.ok(!result.done.some((s) => s.pid === srv.pid), 'the master never answers');
  }
  const res = await getJson(port);
  assert.equal(res.body.version, `v${restarts + 1}`);
  assert.ok(processAlive(srv.pid), 'master PID unchanged');
  srv.signal('SIGTERM');
  assert.deepEqual(await srv.waitExit(15000), { code: 0, signal: null });
}

test('cluster -w 2: phased restarts under load, zero failed requests, no request waits for a boot', (t) =>
  phasedUnderLoad(t, 2, 2));

test('cluster -w 3: phased restart under load', (t) => phasedUnderLoad(t, 3, 1));

test('a broken release stops the phased rollout; old workers keep serving', async (t) => {
  const root = makeReleases(t, { good: {}, broken: { throwAtLoad: true } }, 'good');
  const { srv, port } = await serveCurrent(t, root, { workers: 2 });
  const pids = childPids(srv.pid);
  const load = new Load({ port, keepAlive: 3, newConnection: 2 });
  switchRelease(root, 'broken');
  srv.signal('SIGUSR1');
  const line = await srv.waitForEvent('restart.phased.stopped', 15_000, 0, (l) => l.replaced === 0);
  assert.match(String(line.msg), /broken at load/);
  await load.roundsSince(now(), 3);
  const result = await load.stop();
  assertNoFailedRequests(result);
  assert.deepEqual(childPids(srv.pid), pids, 'the old workers are still the workers');
  assert.equal((await getJson(port)).body.version, 'good');
});

test('SIGKILL to a worker under load: it is replaced and its slot keeps being served', async (t) => {
  const root = tmpDir(t);
  writeRelease(root, 'v1', { bootMs: BOOT_MS });
  const { srv, port } = await serveApp(t, 'app.mjs', {
    directory: path.join(root, 'releases/v1'),
    workers: 2,
  });
  const [victim, survivor] = childPids(srv.pid);
  const load = new Load({ port, keepAlive: 2, newConnection: 4 });
  await load.warmedUp();
  const mark = srv.lines.length;
  process.kill(victim!, 'SIGKILL');
  await srv.waitForEvent('worker.exited', 5000, mark);
  const killedAt = now();
  await srv.waitForEvent('worker.replaced', 10000, mark);
  await load.roundsSince(now(), 3);
  const result = await load.stop();
  const during = result.done.filter((s) => s.end > killedAt + 100 && s.end < killedAt + BOOT_MS);
  assert.ok(during.length > 0, 'requests were served while the replacement booted');
  assert.ok(
    during.every((s) => s.pid === survivor),
    'the survivor served them (the dead slot was lent to it)',
  );
  // Only requests in flight on the killed worker may fail.
  assert.ok(result.failed <= 6, `failed ${result.failed}: ${JSON.stringify(result.byKind)}`);
  const workers = childPids(srv.pid);
  assert.equal(workers.length, 2);
  assert.ok(workers.includes(survivor!) && !workers.includes(victim!));
});

test('SIGKILL to the master: no worker survives and the port is free within 2 s', async (t) => {
  const { srv, port } = await serveApp(t, 'examples/hello.mjs', { workers: 2 });
  const workers = childPids(srv.pid);
  assert.equal(workers.length, 2);
  process.kill(srv.pid, 'SIGKILL');
  const killedAt = Date.now();
  await until('workers to exit', () => workers.every((p) => !processAlive(p)), 2000, 20);
  await until(
    'the port to be free',
    () =>
      new Promise<boolean>((resolve) => {
        const probe = net.createServer();
        probe.once('error', () => resolve(false));
        probe.listen(port, '127.0.0.1', () => probe.close(() => resolve(true)));
      }),
    2000 - (Date.now() - killedAt),
    20,
  );
});

test('an uncaught exception in a worker: it drains and is replaced, no request fails', async (t) => {
  const root = tmpDir(t);
  fs.writeFileSync(
    path.join(root, 'app.mjs'),
    `export default (req, res) => {
  if (req.url === '/crash') setTimeout(() => { throw new Error('async boom'); }, 0);
  setTimeout(() => res.end(JSON.stringify({ version: 'v1', pid: process.pid })), 2);
};
`,
  );
  const { srv, port } = await serveApp(t, 'app.mjs', { directory: root, workers: 2 });
  const before = childPids(srv.pid);
  const load = new Load({ port, keepAlive: 3, newConnection: 3 });
  await load.warmedUp();
  const crashed = await getJson(port, '/crash');
  assert.equal(crashed.status, 200, 'the request that triggered the exception still got its answer');
  const line = await srv.waitForEvent(
    'worker.leaving',
    15_000,
    0,
    (l) => l.reason === 'uncaught exception: async boom',
  );
  assert.equal(line.reason, 'uncaught exception: async boom');
  await srv.waitForEvent('worker.replaced');
  await load.roundsSince(now(), 3);
  const result = await load.stop();
  assertNoFailedRequests(result);
  const workers = childPids(srv.pid);
  assert.equal(workers.length, 2);
  assert.ok(!workers.includes(Number(crashed.body.pid)), 'the failing worker is gone');
  assert.ok(
    workers.some((p) => before.includes(p)),
    'the other worker was left alone',
  );
});

test('SIGTTIN / SIGTTOU add and remove workers (never below 1) under load, slots re-spread', async (t) => {
  const { srv, port } = await serveApp(t, 'examples/hello.mjs', { workers: 2 });
  const load = new Load({ port, keepAlive: 2, newConnection: 3 });
  srv.signal('SIGTTIN');
  await until('3 workers', () => childPids(srv.pid).length === 3);
  await srv.waitForEvent('workers.scaled', 15_000, 0, (l) => l.from === 2 && l.to === 3);
  // every worker gets traffic again once slots are re-spread (3 slots over 3 workers... or lent ones)
  for (const n of [2, 1]) {
    srv.signal('SIGTTOU');
    await until(`${n} workers`, () => childPids(srv.pid).length === n, 15000);
  }
  const mark = srv.lines.length;
  srv.signal('SIGTTOU');
  await srv.waitForEvent(
    'signal.ignored',
    5000,
    mark,
    (l) => l.signal === 'SIGTTOU' && /already at 1 worker/.test(String(l.msg)),
  );
  await load.roundsSince(now(), 3);
  const result = await load.stop();
  assertNoFailedRequests(result);
  const [last] = childPids(srv.pid);
  const tail = result.done.slice(-50);
  assert.ok(
    tail.every((s) => s.pid === last),
    'the one remaining worker serves every slot',
  );
});

test('a worker whose event loop is blocked past --worker-timeout is killed and replaced', async (t) => {
  const dir = tmpDir(t);
  fs.writeFileSync(
    path.join(dir, 'app.mjs'),
    `export default (req, res) => {
  if (req.url === '/block') { const end = Date.now() + 20000; while (Date.now() < end); }
  res.end(JSON.stringify({ pid: process.pid }));
};
`,
  );
  const { srv, port } = await serveApp(t, 'app.mjs', {
    directory: dir,
    workers: 2,
    args: ['--worker-timeout', '2'],
  });
  const before = childPids(srv.pid);
  void getJson(port, '/block').catch(() => {});
  const line = await srv.waitForEvent('worker.checkin.timeout', 10000);
  assert.ok(before.includes(Number(line.workerPid)));
  await srv.waitForEvent('worker.replaced', 10000);
  const workers = childPids(srv.pid);
  assert.equal(workers.length, 2);
  assert.ok(!workers.includes(Number(line.workerPid)));
  assert.equal((await getJson(port)).status, 200);
});

test('worker and master hooks run where and when they should', async (t) => {
  const dir = tmpDir(t);
  const log = path.join(dir, 'hooks.log');
  fs.writeFileSync(
    path.join(dir, 'nserve.config.mjs'),
    `import * as fs from 'node:fs';
const mark = (name) => (ctx) => fs.appendFileSync(${JSON.stringify(log)}, JSON.stringify({ name, pid: process.pid, worker: ctx.worker ?? null }) + '\\n');
export default {
  beforeSpawn: mark('beforeSpawn'),
  onWorkerBoot: mark('onWorkerBoot'),
  onWorkerShutdown: mark('onWorkerShutdown'),
  onBooted: mark('onBooted'),
};
`,
  );
  const { srv } = await serveApp(t, path.join(ROOT, 'examples/hello.mjs'), { workers: 2, cwd: dir });
  const workers = childPids(srv.pid);
  await until('onBooted', () => fs.existsSync(log) && fs.readFileSync(log, 'utf8').includes('onBooted'));
  srv.signal('SIGTERM');
  await srv.waitExit(15000);
  const entries = fs
    .readFileSync(log, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { name: string; pid: number; worker: number | null });
  const of = (name: string) => entries.filter((e) => e.name === name);
  const pidsOf = (name: string) =>
    of(name)
      .map((e) => e.pid)
      .sort();
  assert.deepEqual(
    of('beforeSpawn')
      .map((e) => [e.pid, e.worker])
      .sort(),
    [
      [srv.pid, 0],
      [srv.pid, 1],
    ],
    'beforeSpawn in the master, per worker',
  );
  assert.deepEqual(pidsOf('onWorkerBoot'), [...workers].sort(), 'onWorkerBoot in each worker');
  assert.deepEqual(
    of('onBooted').map((e) => e.pid),
    [srv.pid],
    'onBooted once, in the master',
  );
  assert.deepEqual(
    pidsOf('onWorkerShutdown'),
    [...workers].sort(),
    'onWorkerShutdown in each worker at stop',
  );
  assert.ok(
    entries.findIndex((e) => e.name === 'onBooted') >
      Math.max(...of('onWorkerBoot').map((e) => entries.indexOf(e))),
  );
});

test('a unix-socket bind in cluster mode is shared by every worker and survives a phased restart', async (t) => {
  const dir = tmpDir(t);
  const sock = path.join(dir, 'app.sock');
  const srv = startApp(t, 'examples/hello.mjs', { workers: 2, bind: `unix://${sock}?mode=0660` });
  await srv.waitForEvent('server.booted', 20000);
  assert.equal(fs.statSync(sock).mode & 0o777, 0o660);
  const getPid = () =>
    new Promise<number>((resolve, reject) => {
      http
        .get({ socketPath: sock, path: '/', agent: false }, (res) => {
          let body = '';
          res.on('data', (c: Buffer) => {
            body += c.toString();
          });
          res.on('end', () => resolve(Number((JSON.parse(body) as { pid: number }).pid)));
        })
        .on('error', reject);
    });
  const seen = new Set<number>();
  await until(
    'both workers to answer on the unix socket',
    async () => {
      seen.add(await getPid());
      return seen.size === 2;
    },
    10000,
    1,
  );
  const during: Promise<number>[] = [];
  const ticker = setInterval(() => during.push(getPid()), 5);
  try {
    await restart(srv, 'phased');
  } finally {
    clearInterval(ticker);
  }
  const pids = await Promise.all(during);
  assert.ok(pids.length > 10, 'requests were made during the rollout');
  const after = await getPid();
  assert.ok(childPids(srv.pid).includes(after));
  srv.signal('SIGTERM');
  await srv.waitExit(15000);
  assert.equal(fs.existsSync(sock), false, 'the socket file is removed at stop');
});
