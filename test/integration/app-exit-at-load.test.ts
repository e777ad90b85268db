// An app that calls process.exit() at its top level, while it loads, is a failed start in every mode:
// one line naming the app file and the call, exit status 1, nothing left listening, no pidfile. The
// same call in a hot restart's new code abandons the restart, the old code serving on.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { after, test } from 'node:test';
import { getJson } from '../helpers/load.js';
import { makeReleases } from '../helpers/releases.js';
import { signalRestart } from '../helpers/restart.js';
import { freePort, isEvent, killAll, serveCurrent, startApp, tmpDir } from '../helpers/server.js';

after(killAll);

const EXITS = "console.log('loading');\nprocess.exit(0);\nexport default (req, res) => res.end('{}');\n";

function refused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = net.connect(port, '127.0.0.1');
    sock.on('connect', () => {
      sock.destroy();
      resolve(false);
    });
    sock.on('error', () => resolve(true));
  });
}

const MODES: [string, { workers?: number; env?: NodeJS.ProcessEnv }][] = [
  ['single', {}],
  ['cluster', { workers: 2 }],
  ['portable (NSERVE_NO_ADDON=1)', { env: { NSERVE_NO_ADDON: '1' } }],
];

for (const [mode, options] of MODES) {
  test(`${mode} mode: process.exit(0) while the app loads is a failed start, said in one line, exit 1`, {
    timeout: 30_000,
  }, async (t) => {
    const dir = tmpDir(t);
    const app = path.join(dir, 'exits.mjs');
    fs.writeFileSync(app, EXITS);
    const pidfile = path.join(dir, 'nserve.pid');
    const port = await freePort();
    const srv = startApp(t, app, {
      ...options,
      bind: `tcp://127.0.0.1:${port}`,
      args: ['--pidfile', pidfile],
    });
    const exit = await srv.waitExit(20_000);
    assert.equal(exit.code, 1, srv.tail());
    const lines = srv.stderr.trim().split('\n');
    assert.equal(lines.length, 1, srv.stderr);
    assert.equal(lines[0], `nserve: error: app ${app} called process.exit(0) while loading`);
    assert.equal(fs.existsSync(pidfile), false, 'no pidfile left behind');
    assert.equal(await refused(port), true, 'nothing listening');
  });
}

test('cluster hot restart: new code that calls process.exit at load abandons the restart, old code serves', {
  timeout: 60_000,
}, async (t) => {
  const root = makeReleases(t, { v1: {}, v2: {} }, 'v1');
  fs.writeFileSync(path.join(root, 'releases/v2/app.mjs'), EXITS);
  const { srv, port } = await serveCurrent(t, root, { workers: 2 });
  const outcome = await signalRestart(srv, 'hot', { release: { root, version: 'v2' }, deadlineMs: 30_000 });
  assert.equal(outcome.ok, false, String(outcome.line.msg));
  assert.match(String(outcome.line.msg), /called process\.exit\(0\) while loading/);
  assert.equal((await getJson(port)).body.version, 'v1');
});

for (const bootCheck of [true, false]) {
  test(`single-mode hot restart (${bootCheck ? '--boot-check' : 'optimistic'}): process.exit(0) at load, old code serves`, {
    timeout: 60_000,
  }, async (t) => {
    const root = makeReleases(t, { v1: {}, v2: {} }, 'v1');
    fs.writeFileSync(path.join(root, 'releases/v2/app.mjs'), EXITS);
    const { srv, port } = await serveCurrent(t, root, bootCheck ? { args: ['--boot-check'] } : {});
    const outcome = await signalRestart(srv, 'hot', { release: { root, version: 'v2' }, deadlineMs: 30_000 });
    assert.equal(outcome.ok, false, String(outcome.line.msg));
    assert.match(
      String(outcome.line.msg),
      /^hot restart abandoned, old code keeps serving.*process\.exit\(0\)/,
    );
    if (srv.lines.slice(outcome.mark).some((l) => isEvent(l, 'restart.hot.exec')))
      await srv.waitForLog(
        'the old code booted again',
        (l) => isEvent(l, 'server.booted', 'restart.hot.done'),
        15_000,
        outcome.mark,
      );
    assert.equal((await getJson(port)).body.version, 'v1');
  });
}
