// A worker runs app code, and app code can reach its channel (fd 3). Whatever it writes there, the master
// stays up, keeps its descriptors flat, keeps every slot served, and replaces the offending worker.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { after, test } from 'node:test';
import { assertNoFailedRequests, getJson, Load } from '../helpers/load.js';
import { FIXTURES, isEvent, killAll, processAlive, ROOT, startNserve } from '../helpers/server.js';

after(killAll);

const ATTACKS = [
  'garbage',
  'null',
  'no-keys',
  'forged-accepting',
  'forged-drained',
  'forged-certs',
  'oversize',
  'fds',
  'flood',
];

function fdCount(pid: number): number {
  return fs.readdirSync(`/proc/${pid}/fd`).length;
}

test('garbage, null, wrong shapes, forged messages, oversize datagrams and descriptor floods on the channel: the master survives, the worker is replaced', {
  timeout: 120_000,
}, async (t) => {
  const srv = startNserve(
    [
      'start',
      `${FIXTURES}/adversarial/evil-worker.mjs`,
      '-w',
      '2',
      '--bind',
      'tcp://127.0.0.1:0',
      '--drain-grace',
      '0.2',
    ],
    { env: { NSERVE_TEST_ROOT: ROOT } },
  );
  t.after(() => srv.kill());
  const port = await srv.port(20000);
  await srv.waitForEvent('server.booted');
  const masterFds = fdCount(srv.pid);
  const load = new Load({ port, keepAlive: 2, newConnection: 2 });
  for (const kind of ATTACKS) {
    const mark = srv.lines.length;
    const { body } = await getJson(port, `/evil?kind=${kind}`);
    const attacker = Number(body.pid);
    const violation = await srv.waitForEvent('worker.protocol.broken', 15000, mark);
    assert.equal(violation.code, 'ERR_NSERVE_PROTOCOL', kind);
    assert.equal(violation.workerPid, attacker, `${kind}: the attacker is the one replaced`);
    await srv.waitForLog(
      'the worker replaced, or its exit',
      (l) => isEvent(l, 'worker.replaced', 'worker.exited'),
      20000,
      mark,
    );
    // Its replacement serves: wait until two workers answer again and the attacker is gone.
    const deadline = Date.now() + 20000;
    while (processAlive(attacker) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    assert.ok(!processAlive(attacker), `${kind}: the offending worker exited`);
    assert.ok(processAlive(srv.pid), `${kind}: the master is alive`);
  }
  const result = await load.stop();
  assertNoFailedRequests(result);
  assert.ok(result.ok > 100, `load ran (${result.ok} requests)`);
  // Descriptors that came with the worker's messages were closed: the master's count is flat.
  assert.ok(fdCount(srv.pid) <= masterFds + 2, `master fds ${masterFds} → ${fdCount(srv.pid)}`);
  assert.ok(
    !srv.lines.some(
      (l) => l.level === 60 || isEvent(l, 'worker.uncaught-exception', 'process.uncaught-exception'),
    ),
    'nothing fatal logged',
  );
});
