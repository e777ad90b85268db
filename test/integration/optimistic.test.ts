// Single mode execs at once on SIGUSR2 (no separate boot check) and comes back to the previous release
// when the new code cannot boot: every failure a process can survive leaves the old code serving, with
// zero failed requests (clients only wait), and the log says what happened.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, test } from 'node:test';
import { assertNoFailedRequests, getJson, Load } from '../helpers/load.js';
import { writeRelease } from '../helpers/releases.js';
import { signalRestart } from '../helpers/restart.js';
import { isEvent, killAll, serveApp } from '../helpers/server.js';
import { tmpDir } from '../helpers/tmp.js';

after(killAll);

const BROKEN: Record<string, { app?: string; config?: string; expect: RegExp }> = {
  'throws at load': {
    app: `throw new Error('v2 is broken at load');\nexport default (req, res) => res.end('{}');\n`,
    expect: /v2 is broken at load/,
  },
  'calls process.exit(1) at load': {
    app: `process.exit(1);\nexport default (req, res) => res.end('{}');\n`,
    expect: /process\.exit\(1\)/,
  },
  'exceeds the boot timeout': {
    app: `await new Promise((r) => setTimeout(r, 60000));\nexport default (req, res) => res.end('{}');\n`,
    expect: /did not boot within 1500 ms/,
  },
  'has a broken config file': {
    config: 'export default { workers: 0, \n',
    expect: /config file .* failed to load/,
  },
};

for (const [what, broken] of Object.entries(BROKEN)) {
  test(`SIGUSR2 to a release that ${what}: the old code keeps serving, zero failed requests`, {
    timeout: 60_000,
  }, async (t) => {
    const root = tmpDir(t);
    for (const v of ['v1', 'v2']) {
      writeRelease(root, v, { bootMs: 300 });
      fs.writeFileSync(
        path.join(root, 'releases', v, 'nserve.config.mjs'),
        'export default { workers: 0 };\n',
      );
    }
    if (broken.app !== undefined) fs.writeFileSync(path.join(root, 'releases/v2/app.mjs'), broken.app);
    if (broken.config !== undefined)
      fs.writeFileSync(path.join(root, 'releases/v2/nserve.config.mjs'), broken.config);
    fs.symlinkSync(path.join(root, 'releases/v1'), path.join(root, 'current'));
    const { srv, port } = await serveApp(t, 'app.mjs', {
      directory: path.join(root, 'current'),
      args: ['-C', path.join(root, 'current/nserve.config.mjs'), '--worker-boot-timeout', '1.5'],
    });
    const load = new Load({ port, keepAlive: 2, newConnection: 2 });
    await load.warmedUp();
    fs.rmSync(path.join(root, 'current'));
    fs.symlinkSync(path.join(root, 'releases/v2'), path.join(root, 'current'));
    const outcome = await signalRestart(srv, 'hot', { deadlineMs: 30_000 });
    assert.equal(outcome.ok, false, 'the restart did not take');
    assert.equal(outcome.line.event, 'restart.hot.abandoned');
    assert.match(String(outcome.line.msg), broken.expect);
    // The old code answers again: after an exec back it boots once more (a broken config is caught
    // before the exec: nothing to boot again).
    if (srv.lines.slice(outcome.mark).some((l) => isEvent(l, 'restart.hot.exec')))
      await srv.waitForLog(
        'the old code booted again',
        (l) => isEvent(l, 'server.booted', 'restart.hot.done'),
        15_000,
        outcome.mark,
      );
    else assert.match(what, /config/);
    assert.equal((await getJson(port)).body.version, 'v1');
    await load.roundsSince(performance.now(), 2);
    assertNoFailedRequests(await load.stop());
    const stats = srv.lines.slice(outcome.mark);
    assert.ok(!stats.some((l) => isEvent(l, 'restart.hot.done') && l.version === 'v2'));
  });
}

test('a good release through an optimistic hot restart: one boot, no boot-check child', {
  timeout: 60_000,
}, async (t) => {
  const root = tmpDir(t);
  writeRelease(root, 'v1', { bootMs: 300 });
  writeRelease(root, 'v2', { bootMs: 300 });
  fs.symlinkSync(path.join(root, 'releases/v1'), path.join(root, 'current'));
  const { srv, port } = await serveApp(t, 'app.mjs', { directory: path.join(root, 'current') });
  fs.rmSync(path.join(root, 'current'));
  fs.symlinkSync(path.join(root, 'releases/v2'), path.join(root, 'current'));
  const outcome = await signalRestart(srv, 'hot', { deadlineMs: 30_000 });
  assert.equal(outcome.ok, true);
  assert.ok(!outcome.lines.some((l) => isEvent(l, 'restart.boot-check.started')), 'no separate boot check');
  assert.equal((await getJson(port)).body.version, 'v2');
});

test('an uncaught exception long after an optimistic hot restart stops the server (exit 1); it never execs back', {
  timeout: 60_000,
}, async (t) => {
  const root = tmpDir(t);
  writeRelease(root, 'v1');
  const v2 = path.join(root, 'releases', 'v2');
  fs.mkdirSync(v2, { recursive: true });
  fs.writeFileSync(
    path.join(v2, 'app.mjs'),
    `export default (req, res) => {
  if (req.url === '/crash') setImmediate(() => { throw new Error('boom after boot'); });
  res.setHeader('content-type', 'application/json');
  res.end(JSON.stringify({ version: 'v2', pid: process.pid }));
};
`,
  );
  fs.symlinkSync(path.join(root, 'releases', 'v1'), path.join(root, 'current'));
  const { srv, port } = await serveApp(t, 'app.mjs', { directory: path.join(root, 'current') });
  fs.rmSync(path.join(root, 'current'));
  fs.symlinkSync(v2, path.join(root, 'current'));
  const outcome = await signalRestart(srv, 'hot');
  assert.ok(outcome.ok, String(outcome.line.msg));
  assert.equal((await getJson(port)).body.version, 'v2');
  await getJson(port, '/crash');
  assert.deepEqual(await srv.waitExit(10_000), { code: 1, signal: null });
  assert.ok(
    srv.lines.some((l) => l.code === 'ERR_NSERVE_UNCAUGHT'),
    'logged as the uncaught exception it is',
  );
  assert.doesNotMatch(srv.stderr, /back to the previous release/);
});
