import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import { after, test } from 'node:test';
import { assertNoFailedRequests, getJson, Load, stopWithoutFailures } from '../helpers/load.js';
import { now } from '../helpers/logged-process.js';
import { makeReleases, switchRelease, versions, writeRelease } from '../helpers/releases.js';
import { restart } from '../helpers/restart.js';
import { isEvent, killAll, serveApp, serveCurrent, startNserve, tmpDir, until } from '../helpers/server.js';

after(killAll);

test('hot restart under load: 5 restarts across releases, zero failed requests, same PID', async (t) => {
  const root = makeReleases(t, versions(6, { bootMs: 1000 }), 'v1');
  const { srv, port } = await serveCurrent(t, root);
  const load = new Load({ port, keepAlive: 4, newConnection: 2, post: 1 });
  try {
    for (let v = 2; v <= 6; v++) {
      // every client goes round a few times between restarts (the first time: the load is running)
      await load.roundsSince(now(), 3);
      await restart(srv, 'hot', { release: { root, version: `v${v}` } });
      await until(`v${v} to answer`, async () => (await getJson(port)).body.version === `v${v}`, 5000);
    }
    await load.roundsSince(now(), 3);
  } finally {
    const result = await stopWithoutFailures(load, t);
    assert.ok(result.ok > 100, `load ran (${result.ok} ok)`);
    assert.deepEqual(
      [...new Set(result.done.map((s) => s.pid))],
      [srv.pid],
      'every answer came from the same PID',
    );
  }
  const res = await getJson(port);
  assert.equal(res.body.version, 'v6');
  assert.equal(res.body.pid, srv.pid);
});

test('a release that throws at load: the old code keeps serving and the error is logged', async (t) => {
  const root = makeReleases(t, { good: {}, broken: { throwAtLoad: true } }, 'good');
  const { srv, port } = await serveCurrent(t, root);
  const load = new Load({ port, keepAlive: 2, newConnection: 2 });
  switchRelease(root, 'broken');
  srv.signal('SIGUSR2');
  const line = await srv.waitForEvent('restart.hot.abandoned');
  assert.match(String(line.msg), /release broken is broken at load/);
  await load.roundsSince(now(), 3);
  const result = await load.stop();
  assertNoFailedRequests(result);
  const res = await getJson(port);
  assert.equal(res.body.version, 'good');
  assert.equal(res.body.pid, srv.pid);
});

test('single mode: onRestart hooks run once per restart before the exec (a throwing one does not stop it), onBooted once; worker hooks are named in a warning', async (t) => {
  const root = tmpDir(t);
  writeRelease(root, 'v1');
  const marks = path.join(root, 'hook.log');
  const config = path.join(root, 'nserve.config.mjs');
  fs.writeFileSync(
    config,
    `import * as fs from 'node:fs';
export default {
  onRestart: [
    () => { throw new Error('hook one fails'); },
    async () => { fs.appendFileSync(${JSON.stringify(marks)}, process.pid + ' ' + Date.now() + '\\n'); },
  ],
  onBooted: [() => fs.appendFileSync(${JSON.stringify(marks)}, 'booted ' + process.pid + '\\n')],
  onWorkerBoot: [() => fs.appendFileSync(${JSON.stringify(marks)}, 'worker boot\\n')],
};
`,
  );
  const { srv, port } = await serveApp(t, 'app.mjs', {
    directory: path.join(root, 'releases/v1'),
    args: ['-C', config],
  });
  await until('onBooted ran', () => fs.existsSync(marks), 5000);
  assert.equal(fs.readFileSync(marks, 'utf8'), `booted ${srv.pid}\n`, 'onBooted ran once, onWorkerBoot not');
  assert.ok(
    srv.lines.some(
      (l) => isEvent(l, 'config.worker-only.ignored') && JSON.stringify(l.settings) === '["onWorkerBoot"]',
    ),
    'the worker hook is named in a warning',
  );
  fs.rmSync(marks);
  for (let i = 1; i <= 2; i++) {
    const { line: booted, lines } = await restart(srv, 'hot', { deadlineMs: 15_000 });
    assert.equal(booted.restarts, i);
    const hookErr = lines.find((l) => isEvent(l, 'hook.failed') && l.hook === 'onRestart' && l.index === 0);
    assert.ok(hookErr, 'the throwing hook is logged');
  }
  const entries = fs.readFileSync(marks, 'utf8').trim().split('\n');
  assert.equal(entries.length, 2, 'the hook ran once per restart (onBooted: not again after a restart)');
  for (const e of entries) assert.equal(Number(e.split(' ')[0]), srv.pid);
  assert.equal((await getJson(port)).body.pid, srv.pid);
});

test('a bind removed from the config is closed after the restart, a new one is created', async (t) => {
  const root = tmpDir(t);
  writeRelease(root, 'v1');
  const sockA = path.join(root, 'a.sock');
  const sockB = path.join(root, 'b.sock');
  const config = path.join(root, 'nserve.config.json');
  fs.writeFileSync(
    config,
    JSON.stringify({ app: 'releases/v1/app.mjs', bind: ['tcp://127.0.0.1:0', `unix://${sockA}`] }),
  );
  const srv = startNserve(['start', '-C', config, '--directory', root]);
  t.after(() => srv.kill());
  const port = await srv.port();
  assert.ok(fs.existsSync(sockA));
  fs.writeFileSync(
    config,
    JSON.stringify({ app: 'releases/v1/app.mjs', bind: ['tcp://127.0.0.1:0', `unix://${sockB}`] }),
  );
  const { line: booted } = await restart(srv, 'hot', { deadlineMs: 15_000 });
  assert.deepEqual(
    booted.binds,
    [`tcp://127.0.0.1:${port}`, `unix://${sockB}`],
    'the TCP socket was kept (same port), the new unix bind created',
  );
  await until('the removed unix socket to be gone', () => !fs.existsSync(sockA));
  await assert.rejects(getJsonUnix(sockA), /ENOENT|ECONNREFUSED/, 'nothing answers on the removed bind');
  assert.equal((await getJsonUnix(sockB)).version, 'v1');
});

test('a second SIGUSR2 during a restart is ignored; SIGTERM during a restart stops cleanly', async (t) => {
  const root = tmpDir(t);
  writeRelease(root, 'v1', { bootMs: 800 });
  // --boot-check: the restart lasts the new code's boot before the exec, so the signals land inside it.
  const { srv } = await serveApp(t, 'app.mjs', {
    directory: path.join(root, 'releases/v1'),
    args: ['--boot-check'],
  });
  let mark = srv.lines.length;
  srv.signal('SIGUSR2');
  await srv.waitForEvent('restart.hot.started', 5000, mark, (l) => l.optimistic === false);
  srv.signal('SIGUSR2');
  await srv.waitForEvent(
    'signal.ignored',
    5000,
    mark,
    (l) => l.signal === 'SIGUSR2' && l.state === 'restarting',
  );
  await srv.waitForEvent('restart.hot.done', 15000, mark);
  assert.equal(srv.lines.slice(mark).filter((l) => isEvent(l, 'restart.hot.done')).length, 1);
  mark = srv.lines.length;
  srv.signal('SIGUSR2');
  await srv.waitForEvent('restart.hot.started', 5000, mark, (l) => l.optimistic === false);
  srv.signal('SIGTERM');
  assert.deepEqual(await srv.waitExit(15000), { code: 0, signal: null });
  assert.ok(
    !srv.lines.slice(mark).some((l) => isEvent(l, 'restart.hot.done')),
    'it stopped instead of restarting',
  );
});

function getJsonUnix(socketPath: string): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const req = http.get({ socketPath, path: '/', agent: false, timeout: 5000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        body += c;
      });
      res.on('end', () => resolve(JSON.parse(body) as Record<string, unknown>));
    });
    req.on('error', reject);
  });
}

test('a command line with relative paths (APP, --directory, a config file in the cwd) survives hot restarts', async (t) => {
  const root = makeReleases(t, versions(3), 'v1');
  fs.writeFileSync(
    path.join(root, 'nserve.config.json'),
    JSON.stringify({ bind: 'tcp://127.0.0.1:0', drainGrace: 0.2 }),
  );
  const srv = startNserve(['start', 'app.mjs', '--directory', 'current'], { cwd: root });
  t.after(() => srv.kill());
  const port = await srv.port();
  for (const v of ['v2', 'v3']) {
    await restart(srv, 'hot', { release: { root, version: v }, deadlineMs: 15_000 });
    assert.equal((await getJson(port)).body.version, v, `after the restart to ${v}`);
  }
});
