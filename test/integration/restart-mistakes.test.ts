// Operator mistakes made before a hot restart that only the new image would have found, after the exec,
// with no old image left to come back to (the way back reads the same config and files): each must leave
// the server serving the old code, same PID, with the reason logged. And a deploy's `current` pointing
// nowhere must not keep a crashed worker from being replaced.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { type TestContext, test } from 'node:test';
import { assertNoFailedRequests, getJson, Load } from '../helpers/load.js';
import { now } from '../helpers/logged-process.js';
import { makeReleases, switchRelease, writeRelease } from '../helpers/releases.js';
import { signalRestart } from '../helpers/restart.js';
import {
  childPids,
  freePort,
  isEvent,
  killAll,
  processAlive,
  type ServerProcess,
  serveApp,
  serveCurrent,
  startNserve,
  tmpDir,
  until,
} from '../helpers/server.js';

/** Another program listening on a loopback port (closed after the test). */
async function occupied(t: TestContext): Promise<number> {
  const s = net.createServer((c) => c.destroy());
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  t.after(() => s.close());
  return (s.address() as net.AddressInfo).port;
}

/**
 * `nserve start app.mjs` in a new directory holding the app and an nserve.config.mjs (found there) that
 * binds a free loopback port; returns once it serves that port.
 */
async function startWithConfig(t: TestContext, args: string[]) {
  const dir = tmpDir(t);
  writeRelease(dir, 'v1');
  fs.cpSync(path.join(dir, 'releases', 'v1', 'app.mjs'), path.join(dir, 'app.mjs'));
  const port = await freePort();
  writeConfig(dir, { bind: [`tcp://127.0.0.1:${port}`] });
  const srv = startNserve(['start', 'app.mjs', ...args], { cwd: dir });
  t.after(() => srv.kill());
  assert.equal(await srv.port(20_000), port);
  return { dir, port, srv };
}

function writeConfig(dir: string, config: Record<string, unknown>): void {
  fs.writeFileSync(path.join(dir, 'nserve.config.mjs'), `export default ${JSON.stringify(config)};\n`);
}

/** SIGUSR2; the restart must be abandoned with `reason`, and the old code (and PID) go on serving. */
async function abandonedUnderLoad(srv: ServerProcess, port: number, reason: RegExp, workers: number[]) {
  const load = new Load({ port, keepAlive: 2, newConnection: 2 });
  await load.warmedUp();
  const outcome = await signalRestart(srv, 'hot');
  assert.equal(outcome.ok, false, String(outcome.line.msg));
  assert.equal(outcome.line.event, 'restart.hot.abandoned');
  assert.match(String(outcome.line.msg), reason);
  await load.roundsSince(now(), 3);
  assertNoFailedRequests(await load.stop());
  assert.ok(processAlive(srv.pid), 'the server is still there');
  const res = await getJson(port);
  assert.equal(res.status, 200);
  assert.deepEqual(childPids(srv.pid), workers, 'the same workers serve');
  return res;
}

for (const workers of [0, 2]) {
  const mode = workers === 0 ? 'single mode' : `-w ${workers}`;
  const wArgs = workers === 0 ? [] : ['-w', String(workers)];

  test(`${mode}: the config file removed before a hot restart: abandoned, not restarted with the defaults`, async (t) => {
    t.after(killAll);
    const { dir, port, srv } = await startWithConfig(t, wArgs);
    fs.renameSync(path.join(dir, 'nserve.config.mjs'), path.join(dir, 'nserve.config.mjs.moved'));
    await abandonedUnderLoad(
      srv,
      port,
      /the config file .*nserve\.config\.mjs, read at start, is gone/,
      childPids(srv.pid),
    );
  });

  test(`${mode}: a new bind on a port another program holds: the hot restart is abandoned before the exec`, async (t) => {
    t.after(killAll);
    const { dir, port, srv } = await startWithConfig(t, wArgs);
    const busy = await occupied(t);
    writeConfig(dir, { bind: [`tcp://127.0.0.1:${port}`, `tcp://127.0.0.1:${busy}`] });
    await abandonedUnderLoad(
      srv,
      port,
      new RegExp(`address already in use: tcp://127\\.0\\.0\\.1:${busy}`),
      childPids(srv.pid),
    );
  });

  test(`${mode}: a held address spelled differently (localhost for 127.0.0.1), a control URL moved to a missing directory: abandoned`, async (t) => {
    t.after(killAll);
    const { dir, port, srv } = await startWithConfig(t, wArgs);
    const workers = childPids(srv.pid);
    writeConfig(dir, { bind: [`tcp://localhost:${port}`] });
    await abandonedUnderLoad(
      srv,
      port,
      new RegExp(
        `the server holds that address as tcp://127\\.0\\.0\\.1:${port}, .*keep tcp://127\\.0\\.0\\.1:${port}`,
      ),
      workers,
    );
    const missing = path.join(dir, 'gone', 'ctl.sock');
    writeConfig(dir, { bind: [`tcp://127.0.0.1:${port}`], controlUrl: `unix://${missing}` });
    await abandonedUnderLoad(
      srv,
      port,
      new RegExp(`cannot bind unix://${missing}: the directory ${path.dirname(missing)} does not exist`),
      workers,
    );
    // A new unix bind at a socket another program listens on.
    const theirs = path.join(dir, 'theirs.sock');
    const other = net.createServer((c) => c.destroy());
    await new Promise<void>((resolve) => other.listen(theirs, resolve));
    t.after(() => other.close());
    writeConfig(dir, { bind: [`tcp://127.0.0.1:${port}`, `unix://${theirs}`] });
    await abandonedUnderLoad(srv, port, new RegExp(`address already in use: unix://${theirs}`), workers);
    assert.ok(fs.lstatSync(theirs).isSocket(), 'their socket file is left alone');
  });

  test(`${mode}: the pidfile's directory removed before a hot restart: abandoned, still serving`, async (t) => {
    t.after(killAll);
    const root = makeReleases(t, { v1: {} }, 'v1');
    const run = path.join(root, 'run');
    fs.mkdirSync(run);
    const { srv, port } = await serveCurrent(t, root, {
      workers: workers === 0 ? undefined : workers,
      args: ['--pidfile', path.join(run, 'nserve.pid')],
    });
    await until('the pidfile', () => fs.existsSync(path.join(run, 'nserve.pid')), 5000);
    fs.rmSync(run, { recursive: true });
    await abandonedUnderLoad(
      srv,
      port,
      /cannot write --pidfile .*run is gone or not writable/,
      childPids(srv.pid),
    );
  });
}

test('single mode, an app edited in place (no release layout): a broken edit is caught before the exec, a good one serves', async (t) => {
  t.after(killAll);
  const dir = tmpDir(t);
  const release = writeRelease(dir, 'v1');
  const { srv, port } = await serveApp(t, 'app.mjs', { directory: release });
  // The same file, broken: the way back after an exec would load it again.
  fs.writeFileSync(path.join(release, 'app.mjs'), 'export default (req, res) => { throw\n');
  const res = await abandonedUnderLoad(srv, port, /app\.mjs/, []);
  assert.equal(res.body.version, 'v1');
  assert.ok(
    srv.lines.some((l) => /no other release to come back to/.test(String(l.msg))),
    'the log says why the new code was checked first',
  );
  // Fixed in place: the restart goes through.
  writeRelease(dir, 'v1');
  fs.writeFileSync(
    path.join(release, 'app.mjs'),
    fs.readFileSync(path.join(release, 'app.mjs'), 'utf8').replace('"v1"', '"v1-edited"'),
  );
  const outcome = await signalRestart(srv, 'hot');
  assert.equal(outcome.ok, true, String(outcome.line.msg));
  assert.equal((await getJson(port)).body.version, 'v1-edited');
  assert.equal((await getJson(port)).body.pid, srv.pid);
});

test('-w 2, `current` pointing nowhere: a crashed worker is still replaced, from the release that serves', async (t) => {
  t.after(killAll);
  const root = makeReleases(t, { v1: {} }, 'v1');
  const { srv, port } = await serveCurrent(t, root, { workers: 2 });
  const [victim, survivor] = childPids(srv.pid);
  fs.rmSync(path.join(root, 'current'));
  fs.symlinkSync(path.join(root, 'releases', 'v0-deleted'), path.join(root, 'current'));
  const mark = srv.lines.length;
  process.kill(victim!, 'SIGKILL');
  await srv.waitForEvent('worker.replaced', 15_000, mark);
  const pids = childPids(srv.pid);
  assert.equal(pids.length, 2);
  assert.ok(pids.includes(survivor!) && !pids.includes(victim!));
  assert.ok(!srv.lines.slice(mark).some((l) => isEvent(l, 'worker.replace.failed')));
  const seen = new Set<number>();
  await until(
    'both workers answer v1',
    async () => {
      const r = await getJson(port);
      assert.equal(r.body.version, 'v1');
      seen.add(Number(r.body.pid));
      return seen.size === 2;
    },
    10_000,
  );
});

test('single mode: a release without the --dotenv file is abandoned before the exec, named as such', async (t) => {
  t.after(killAll);
  const root = makeReleases(t, { v1: {}, v2: {} }, 'v1');
  fs.writeFileSync(path.join(root, 'releases', 'v1', '.env'), 'GREETING=hello\n');
  const { srv, port } = await serveCurrent(t, root, { args: ['--dotenv', '.env'] });
  switchRelease(root, 'v2');
  const res = await abandonedUnderLoad(
    srv,
    port,
    /cannot read the env file .*releases\/v2\/\.env \(--dotenv \/ envFile\)/,
    [],
  );
  assert.equal(res.body.version, 'v1');
});

test('single mode: onBooted runs once, not again when a failed hot restart comes back to the old code', async (t) => {
  t.after(killAll);
  const root = makeReleases(t, { v1: {}, v2: { throwAtLoad: true } }, 'v1');
  const marks = path.join(root, 'booted.log');
  const config = path.join(root, 'hooks.mjs');
  fs.writeFileSync(
    config,
    `import * as fs from 'node:fs';\nexport default { onBooted: [() => fs.appendFileSync(${JSON.stringify(marks)}, 'booted\\n')] };\n`,
  );
  const { srv, port } = await serveCurrent(t, root, { args: ['-C', config] });
  await until('onBooted ran', () => fs.existsSync(marks), 5000);
  switchRelease(root, 'v2');
  const outcome = await signalRestart(srv, 'hot');
  assert.equal(outcome.ok, false, String(outcome.line.msg));
  assert.equal((await getJson(port)).body.version, 'v1');
  // The way back is a new image too (its restart count back at 0): it must not run onBooted again.
  await new Promise((resolve) => setTimeout(resolve, 300));
  assert.equal(fs.readFileSync(marks, 'utf8'), 'booted\n');
});
