// Restarts and worker events that go wrong must never take the site down (cases found in review).
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, test } from 'node:test';
import { assertNoFailedRequests, getJson, Load } from '../helpers/load.js';
import { makeReleases } from '../helpers/releases.js';
import {
  childPids,
  killAll,
  processAlive,
  serveCurrent,
  startNserve,
  tmpDir,
  until,
  zombiePids,
} from '../helpers/server.js';

after(killAll);

test('phased restart with the release directory gone: logged, the master and its workers keep serving', async (t) => {
  const root = makeReleases(t, { v1: {} }, 'v1');
  const { srv, port } = await serveCurrent(t, root, ['-w', '2']);
  const load = new Load({ port, keepAlive: 2, newConnection: 2 });
  fs.rmSync(path.join(root, 'current'));
  srv.signal('SIGUSR1');
  const line = await srv.waitForMsg(/^phased restart stopped after 0\/2 workers/);
  assert.match(String(line.msg), /cannot be resolved/);
  await new Promise((r) => setTimeout(r, 300));
  assertNoFailedRequests(await load.stop());
  assert.ok(processAlive(srv.pid));
  assert.equal((await getJson(port)).body.version, 'v1');
});

test('cluster hot restart with a config file that no longer loads: abandoned before the exec, old workers serve', async (t) => {
  const root = makeReleases(t, { v1: {} }, 'v1');
  const config = path.join(root, 'nserve.config.mjs');
  fs.writeFileSync(config, 'export default { workers: 2 };\n');
  const { srv, port } = await serveCurrent(t, root, ['-C', config]);
  const workers = childPids(srv.pid);
  const load = new Load({ port, keepAlive: 2, newConnection: 2 });
  fs.writeFileSync(config, 'export default { workers: 2, \n');
  srv.signal('SIGUSR2');
  const line = await srv.waitForMsg(/^hot restart abandoned, old workers keep serving/);
  assert.match(String(line.msg), /config file .* failed to load/);
  await new Promise((r) => setTimeout(r, 300));
  assertNoFailedRequests(await load.stop());
  assert.deepEqual(childPids(srv.pid), workers);
  assert.ok(!srv.lines.some((l) => l.msg === 'hot restart: exec'), 'no exec happened');
});

test('single-mode hot restarts leave no zombie behind (the boot check child is reaped)', async (t) => {
  const srv = startNserve(['start', 'examples/hello.mjs', '--bind', 'tcp://127.0.0.1:0']);
  t.after(() => srv.kill());
  await srv.port();
  for (let i = 0; i < 3; i++) {
    const mark = srv.lines.length;
    srv.signal('SIGUSR2');
    await srv.waitForMsg('nserve booted after hot restart', 15000, mark);
  }
  assert.deepEqual(zombiePids(srv.pid), []);
});

test('SIGTERM sent to one worker: its slots move, it drains and is replaced, no request fails', async (t) => {
  const root = makeReleases(t, { v1: {} }, 'v1');
  const { srv, port } = await serveCurrent(t, root, ['-w', '2']);
  const [victim] = childPids(srv.pid);
  const load = new Load({ port, keepAlive: 3, newConnection: 3, post16k: 1 });
  await new Promise((r) => setTimeout(r, 200));
  process.kill(victim!, 'SIGTERM');
  await srv.waitForMsg(/^worker \d is leaving \(received SIGTERM\): replacing it/);
  await srv.waitForMsg(/^worker \d replaced/);
  await until('the victim to be gone', () => !childPids(srv.pid).includes(victim!));
  await new Promise((r) => setTimeout(r, 300));
  assertNoFailedRequests(await load.stop());
  assert.equal(childPids(srv.pid).length, 2);
});

test('SIGTERM during a phased restart: the stop wins, no new worker is left behind', async (t) => {
  const root = makeReleases(t, { v1: { bootMs: 1000 } }, 'v1');
  const { srv } = await serveCurrent(t, root, ['-w', '2']);
  const mark = srv.lines.length;
  srv.signal('SIGUSR1');
  await srv.waitForMsg('phased restart: started', 5000, mark);
  await srv.waitForMsg(/^worker 0 spawned/, 5000, mark);
  const spawned = childPids(srv.pid);
  srv.signal('SIGTERM');
  assert.deepEqual(await srv.waitExit(15000), { code: 0, signal: null });
  await until('every worker gone', () => spawned.every((p) => !processAlive(p)), 5000);
  assert.ok(!srv.lines.some((l) => l.msg === 'phased restart: done'));
});

test('SIGTERM while a single-mode server is still booting: it stops once booted, exit 0', async (t) => {
  const dir = tmpDir();
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  fs.writeFileSync(
    path.join(dir, 'app.mjs'),
    "await new Promise((r) => setTimeout(r, 800));\nexport default (req, res) => res.end('{}');\n",
  );
  const srv = startNserve(['start', 'app.mjs', '--directory', dir, '--bind', 'tcp://127.0.0.1:0']);
  t.after(() => srv.kill());
  await new Promise((r) => setTimeout(r, 300));
  srv.signal('SIGTERM');
  assert.deepEqual(await srv.waitExit(15000), { code: 0, signal: null });
  assert.ok(srv.lines.some((l) => l.msg === 'graceful stop: draining'));
});
