// SIGUSR1 is nserve's phased-restart signal, and Node's signal to open its inspector (127.0.0.1:9229, for
// the life of the process: any local user could then run code as the server). Sent at any moment of a
// process's start-up, it must never leave a listening socket other than the server's own binds.
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { isEvent, killAll, listeningPorts, processAlive, startNserve } from '../helpers/server.js';

after(killAll);

const DELAYS = Array.from({ length: 21 }, (_, i) => i * 5);

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

test('SIGUSR1 0–100 ms after a start (5 ms steps): no inspector port, only the bind', {
  timeout: 120_000,
}, async () => {
  let endedEarly = 0;
  for (const delay of DELAYS) {
    const srv = startNserve(['start', 'examples/hello.mjs', '--bind', 'tcp://127.0.0.1:0']);
    try {
      await sleep(delay);
      srv.signal('SIGUSR1');
      let port: number;
      try {
        port = await srv.port(15000);
      } catch {
        // Before Node has installed any handler (its first few ms), SIGUSR1 has its default action and
        // ends the process, as for any program: no port of any kind was opened.
        assert.deepEqual(await srv.waitExit(5000), { code: null, signal: 'SIGUSR1' }, `delay ${delay}`);
        endedEarly++;
        continue;
      }
      await srv.waitForEvent('server.booted', 15000);
      await sleep(100); // an inspector would be listening by now
      assert.ok(processAlive(srv.pid), `delay ${delay}: alive`);
      assert.deepEqual(listeningPorts(srv.pid), [port], `delay ${delay} ms after start`);
    } finally {
      await srv.kill();
    }
  }
  // Which delays fall before Node's first handler depends on the machine's load: no count is asserted,
  // only that the test saw servers that took the signal (most delays do, on any line).
  assert.ok(
    endedEarly < DELAYS.length / 2,
    `most servers took the signal (${endedEarly} of ${DELAYS.length} ended before Node's first handler)`,
  );
});

test("SIGUSR1 0–100 ms after a hot restart's exec (5 ms steps): no inspector port, only the bind", {
  timeout: 180_000,
}, async (t) => {
  const srv = startNserve(['start', 'examples/hello.mjs', '--bind', 'tcp://127.0.0.1:0']);
  t.after(() => srv.kill());
  const port = await srv.port(15000);
  await srv.waitForEvent('server.booted', 15000);
  for (const delay of DELAYS) {
    const mark = srv.lines.length;
    srv.signal('SIGUSR2');
    await srv.waitForEvent('restart.hot.exec', 15000, mark);
    await sleep(delay);
    srv.signal('SIGUSR1');
    await srv.waitForEvent('restart.hot.done', 15000, mark);
    await sleep(100);
    assert.ok(processAlive(srv.pid), `delay ${delay}: alive`);
    assert.deepEqual(listeningPorts(srv.pid), [port], `delay ${delay} ms after the exec`);
  }
});

test('SIGUSR1 to cluster workers as they start: no worker ever listens on an inspector port', {
  timeout: 120_000,
}, async (t) => {
  const srv = startNserve(['start', 'examples/hello.mjs', '-w', '2', '--bind', 'tcp://127.0.0.1:0']);
  t.after(() => srv.kill());
  const port = await srv.port(15000);
  await srv.waitForEvent('server.booted', 15000);
  for (const delay of [0, 10, 20, 40, 60, 80, 100]) {
    const mark = srv.lines.length;
    srv.signal('SIGUSR1'); // a phased restart: each worker is replaced by a freshly spawned one
    const spawned = await srv.waitForEvent('worker.spawned', 15000, mark, (l) => l.worker === 0);
    await sleep(delay);
    const pid = Number(spawned.workerPid);
    process.kill(pid, 'SIGUSR1');
    // In the first milliseconds of a process (before Node installs any handler) SIGUSR1 still has its
    // default action and may end the new worker: then the rollout stops and the old workers serve on.
    await srv.waitForLog(
      'the phased restart to end',
      (l) => isEvent(l, 'restart.phased.done', 'restart.phased.stopped'),
      30000,
      mark,
    );
    await sleep(100);
    assert.ok(processAlive(srv.pid), `delay ${delay}: the master is alive`);
    for (const child of [srv.pid, ...(processAlive(pid) ? [pid] : [])]) {
      for (const p of listeningPorts(child))
        assert.equal(p, port, `delay ${delay}: pid ${child} listens only on the bind`);
    }
  }
});
