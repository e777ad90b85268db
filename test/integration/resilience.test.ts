// Restarts and worker events that go wrong must never take the site down (cases found in review).
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as path from 'node:path';
import { after, test } from 'node:test';
import { assertNoFailedRequests, getJson, Load } from '../helpers/load.js';
import { type LogLine, now } from '../helpers/logged-process.js';
import { makeReleases } from '../helpers/releases.js';
import { restart } from '../helpers/restart.js';
import {
  childPids,
  isEvent,
  killAll,
  processAlive,
  serveApp,
  serveCurrent,
  startApp,
  tmpDir,
  until,
  zombiePids,
} from '../helpers/server.js';

after(killAll);

test('phased restart with the release directory gone: logged, the master and its workers keep serving', async (t) => {
  const root = makeReleases(t, { v1: {} }, 'v1');
  const { srv, port } = await serveCurrent(t, root, { workers: 2 });
  const load = new Load({ port, keepAlive: 2, newConnection: 2 });
  fs.rmSync(path.join(root, 'current'));
  srv.signal('SIGUSR1');
  const line = await srv.waitForEvent('restart.phased.stopped', 15_000, 0, (l) => l.replaced === 0);
  assert.match(String(line.msg), /cannot be resolved/);
  await load.roundsSince(now(), 3);
  assertNoFailedRequests(await load.stop());
  assert.ok(processAlive(srv.pid));
  assert.equal((await getJson(port)).body.version, 'v1');
});

test('cluster hot restart with a config file that no longer loads: abandoned before the exec, old workers serve', async (t) => {
  const root = makeReleases(t, { v1: {} }, 'v1');
  const config = path.join(root, 'nserve.config.mjs');
  fs.writeFileSync(config, 'export default { workers: 2 };\n');
  const { srv, port } = await serveCurrent(t, root, { args: ['-C', config] });
  const workers = childPids(srv.pid);
  const load = new Load({ port, keepAlive: 2, newConnection: 2 });
  fs.writeFileSync(config, 'export default { workers: 2, \n');
  srv.signal('SIGUSR2');
  const line = await srv.waitForEvent('restart.hot.abandoned');
  assert.match(String(line.msg), /config file .* failed to load/);
  await load.roundsSince(now(), 3);
  assertNoFailedRequests(await load.stop());
  assert.deepEqual(childPids(srv.pid), workers);
  assert.ok(!srv.lines.some((l) => isEvent(l, 'restart.hot.exec')), 'no exec happened');
});

test('single-mode hot restarts leave no zombie behind (the boot check child is reaped)', async (t) => {
  const { srv } = await serveApp(t, 'examples/hello.mjs');
  for (let i = 0; i < 3; i++) await restart(srv, 'hot', { deadlineMs: 15_000 });
  assert.deepEqual(zombiePids(srv.pid), []);
});

test('SIGTERM sent to one worker: its slots move, it drains and is replaced, no request fails', async (t) => {
  const root = makeReleases(t, { v1: {} }, 'v1');
  const { srv, port } = await serveCurrent(t, root, { workers: 2 });
  const [victim] = childPids(srv.pid);
  const load = new Load({ port, keepAlive: 3, newConnection: 3, post: 1 });
  await load.warmedUp();
  process.kill(victim!, 'SIGTERM');
  await srv.waitForEvent('worker.leaving', 15_000, 0, (l) => l.reason === 'received SIGTERM');
  await srv.waitForEvent('worker.replaced');
  await until('the victim to be gone', () => !childPids(srv.pid).includes(victim!));
  await load.roundsSince(now(), 3);
  assertNoFailedRequests(await load.stop());
  assert.equal(childPids(srv.pid).length, 2);
});

test('SIGTERM during a phased restart: the stop wins, no new worker is left behind', async (t) => {
  const root = makeReleases(t, { v1: { bootMs: 1000 } }, 'v1');
  const { srv } = await serveCurrent(t, root, { workers: 2 });
  const mark = srv.lines.length;
  srv.signal('SIGUSR1');
  await srv.waitForEvent('restart.phased.started', 5000, mark);
  await srv.waitForEvent('worker.spawned', 5000, mark, (l) => l.worker === 0);
  const spawned = childPids(srv.pid);
  srv.signal('SIGTERM');
  assert.deepEqual(await srv.waitExit(15000), { code: 0, signal: null });
  await until('every worker gone', () => spawned.every((p) => !processAlive(p)), 5000);
  assert.ok(!srv.lines.some((l) => isEvent(l, 'restart.phased.done')));
});

// The app's boot waits for a gate file that the test creates only after sending SIGTERM, so the signal
// cannot land after the boot; the app also logs what it saw, so the log itself shows the order. An app's
// own SIGTERM listener is held until the drain (app/stop-signals.ts): what nserve's earliest handler
// (bin/nserve.js) recorded is the evidence instead.
const GATED_BOOT_APP = `import * as fs from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
const seen = () => globalThis.__nserveEarlySignals?.received ?? [];
console.log(JSON.stringify({ msg: 'fixture: boot started' }));
// Until the gate is there and the signal was seen (the signal reaches JS a loop turn after it arrives).
for (const deadline = Date.now() + 10000; !(fs.existsSync(process.env.BOOT_GATE) && seen().length > 0) && Date.now() < deadline; ) await sleep(10);
console.log(JSON.stringify({ msg: 'fixture: boot ends', signalsDuringBoot: [...seen()] }));
export default (req, res) => res.end('{}');
`;

test('SIGTERM while a single-mode server is still booting: it stops once booted, exit 0', async (t) => {
  const dir = tmpDir(t);
  fs.writeFileSync(path.join(dir, 'app.mjs'), GATED_BOOT_APP);
  const gate = path.join(dir, 'gate');
  const srv = startApp(t, 'app.mjs', { directory: dir, env: { BOOT_GATE: gate } });
  await srv.waitForMsg('fixture: boot started');
  srv.signal('SIGTERM');
  fs.writeFileSync(gate, '');
  assert.deepEqual(await srv.waitExit(15000), { code: 0, signal: null });
  const at = (what: string, pred: (l: LogLine) => boolean): number => {
    const i = srv.lines.findIndex(pred);
    assert.ok(i >= 0, `the log has ${what}`);
    return i;
  };
  const bootEnds = at('"fixture: boot ends"', (l) => l.msg === 'fixture: boot ends');
  const booted = at('server.booted', (l) => isEvent(l, 'server.booted'));
  const draining = at('stop.draining', (l) => isEvent(l, 'stop.draining'));
  const stopped = at('server.stopped', (l) => isEvent(l, 'server.stopped'));
  assert.deepEqual(
    srv.lines[bootEnds]?.signalsDuringBoot,
    ['SIGTERM'],
    'the SIGTERM landed while the app was booting',
  );
  assert.ok(bootEnds < booted, 'the boot had not finished');
  assert.ok(booted < draining, 'the stop was carried out once booted');
  assert.ok(draining < stopped);
});

test('a frozen worker (SIGSTOP) killed for --worker-timeout: the log says what it held at its last check-in', async (t) => {
  const dir = tmpDir(t);
  // /slow sends its headers (so the client knows it is in flight) and never ends.
  fs.writeFileSync(
    path.join(dir, 'app.mjs'),
    `export default (req, res) => {
  if (req.url === '/slow') { res.writeHead(200); res.flushHeaders(); return; }
  res.end(JSON.stringify({ pid: process.pid }));
};
`,
  );
  const { srv, port } = await serveApp(t, 'app.mjs', {
    directory: dir,
    workers: 1,
    args: ['--worker-timeout', '2'],
  });
  const [frozen] = childPids(srv.pid);
  const clients: (http.ClientRequest | net.Socket)[] = [];
  t.after(() => {
    for (const c of clients) c.destroy();
  });
  const inFlight = (): Promise<void> =>
    new Promise((resolve, reject) => {
      const req = http.get({ host: '127.0.0.1', port, path: '/slow', agent: false }, () => resolve());
      req.on('error', () => {}); // reset when the worker is killed: expected
      req.setTimeout(5000, () => reject(new Error('/slow sent no headers within 5 s')));
      clients.push(req);
    });
  await Promise.all([inFlight(), inFlight()]);
  // And one connection that sends nothing (idle): three connections, two requests in flight.
  const idle = net.connect(port, '127.0.0.1');
  idle.on('error', () => {});
  clients.push(idle);
  await new Promise((resolve) => idle.once('connect', resolve));
  // Workers check in once a second: let one check-in carry these counts.
  await new Promise((r) => setTimeout(r, 1500));
  const mark = srv.lines.length;
  process.kill(frozen!, 'SIGSTOP');
  const line: LogLine = await srv.waitForEvent('worker.checkin.timeout', 10_000, mark, (l) => l.worker === 0);
  assert.equal(line.workerPid, frozen);
  assert.equal(line.code, 'ERR_NSERVE_WORKER_TIMEOUT');
  assert.equal(line.inFlight, 2);
  assert.equal(line.connections, 3);
  assert.deepEqual([line.inFlight, line.connections], [2, 3]);
  await srv.waitForEvent('worker.replaced', 10_000, mark, (l) => l.worker === 0);
  assert.equal((await getJson(port)).status, 200);
  assert.ok(!processAlive(frozen!));
});
