// --ready-probe PATH: a release whose app loads but answers 500 on the probe path never takes traffic.
// Hot and phased restarts are refused with the old release serving and zero failed requests; the verdict
// names the probe's status (log, `ctl restart --wait`).
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, test } from 'node:test';
import { ctl } from '../helpers/control.js';
import { assertNoFailedRequests, getJson, Load } from '../helpers/load.js';
import { switchRelease } from '../helpers/releases.js';
import { signalRestart } from '../helpers/restart.js';
import { isEvent, killAll, serveApp, tmpDir } from '../helpers/server.js';

after(killAll);

function release(root: string, version: string, readyStatus: number): void {
  const dir = path.join(root, 'releases', version);
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(
    path.join(dir, 'app.mjs'),
    `export default function handler(req, res) {
  if (req.url === '/ready') { res.statusCode = ${readyStatus}; res.end('ready?'); return; }
  res.setHeader('content-type', 'application/json');
  res.end(JSON.stringify({ version: ${JSON.stringify(version)}, pid: process.pid }));
}
`,
  );
}

function releases(t: { after(fn: () => void): void }): string {
  const root = tmpDir(t);
  release(root, 'v1', 200);
  release(root, 'v2', 500); // loads fine, but every request to /ready fails: a bad deploy
  switchRelease(root, 'v1');
  return root;
}

test('-w 2: a release failing the ready probe is refused under SIGUSR2 and SIGUSR1; ctl restart --wait says why', {
  timeout: 90_000,
}, async (t) => {
  const root = releases(t);
  const state = path.join(root, 'nserve.state');
  const { srv, port } = await serveApp(t, 'app.mjs', {
    directory: path.join(root, 'current'),
    workers: 2,
    args: ['--ready-probe', '/ready', '--control-url', 'auto', '--state', state],
  });
  const load = new Load({ port, keepAlive: 2, newConnection: 2 });
  await load.warmedUp();
  switchRelease(root, 'v2');
  for (const kind of ['hot', 'phased'] as const) {
    const outcome = await signalRestart(srv, kind, { deadlineMs: 30_000 });
    assert.equal(outcome.ok, false, `${kind}: refused`);
    assert.match(String(outcome.line.msg), /ready probe GET \/ready answered 500 \(expected 2xx\)/);
    assert.equal((await getJson(port)).body.version, 'v1', `${kind}: the old release serves`);
  }
  const viaCtl = await ctl(['-S', state, 'restart', '--wait']);
  assert.notEqual(viaCtl.code, 0);
  assert.match(viaCtl.stderr + viaCtl.stdout, /answered 500/);
  await load.roundsSince(performance.now(), 2);
  assertNoFailedRequests(await load.stop());
  assert.equal((await getJson(port, '/')).body.version, 'v1');
});

test('single mode: a release failing the ready probe is refused under SIGUSR2, zero failed requests', {
  timeout: 60_000,
}, async (t) => {
  const root = releases(t);
  const { srv, port } = await serveApp(t, 'app.mjs', {
    directory: path.join(root, 'current'),
    args: ['--ready-probe', '/ready'],
  });
  const load = new Load({ port, keepAlive: 2, newConnection: 2 });
  await load.warmedUp();
  switchRelease(root, 'v2');
  const outcome = await signalRestart(srv, 'hot', { deadlineMs: 30_000 });
  assert.equal(outcome.ok, false);
  assert.match(
    String(outcome.line.msg),
    /^hot restart abandoned, old code keeps serving: ready probe GET \/ready answered 500/,
  );
  await srv.waitForLog(
    'the old code booted again',
    (l) => isEvent(l, 'server.booted', 'restart.hot.done'),
    15_000,
    outcome.mark,
  );
  assert.equal((await getJson(port)).body.version, 'v1');
  await load.roundsSince(performance.now(), 2);
  assertNoFailedRequests(await load.stop());
});

test('a good release passes the probe and serves after a hot restart', {
  timeout: 60_000,
}, async (t) => {
  const root = releases(t);
  release(root, 'v3', 200);
  const { srv, port } = await serveApp(t, 'app.mjs', {
    directory: path.join(root, 'current'),
    workers: 2,
    args: ['--ready-probe', '/ready'],
  });
  switchRelease(root, 'v3');
  const outcome = await signalRestart(srv, 'hot', { deadlineMs: 30_000 });
  assert.equal(outcome.ok, true);
  assert.equal((await getJson(port)).body.version, 'v3');
});
