// A SIGTERM that lands while a cluster hot restart execs (between the old image's last line and the new
// image's first) is a stop during a restart: the new image adopts the workers first, then takes the
// signal, so the restart gives up and the adopted workers drain. A request in flight is answered, the
// server exits 0, and no worker is left behind.
import assert from 'node:assert/strict';
import * as http from 'node:http';
import { after, test } from 'node:test';
import { makeReleases, switchRelease } from '../helpers/releases.js';
import { childPids, killAll, processAlive, serveCurrent } from '../helpers/server.js';

after(killAll);

function slowGet(port: number): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/', agent: false }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => {
        body += c.toString();
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.on('error', reject);
  });
}

for (const delayMs of [0, 30, 80]) {
  test(`-w 2: SIGTERM ${delayMs} ms after a hot restart's exec: the in-flight request is answered, exit 0`, {
    timeout: 60_000,
  }, async (t) => {
    const root = makeReleases(t, { v1: { requestMs: 1500 }, v2: { requestMs: 1500, bootMs: 500 } }, 'v1');
    const { srv, port } = await serveCurrent(t, root, { workers: 2 });
    const workers = childPids(srv.pid);
    const inFlight = slowGet(port);
    await new Promise((r) => setTimeout(r, 200)); // the request reached a worker
    switchRelease(root, 'v2');
    const mark = srv.lines.length;
    srv.signal('SIGUSR2');
    await srv.waitForEvent('restart.hot.exec', 15_000, mark);
    await new Promise((r) => setTimeout(r, delayMs));
    srv.signal('SIGTERM');
    const answer = await inFlight.catch((err: unknown) => {
      throw new Error(`${String(err)}\n${srv.tail(80)}`);
    });
    assert.equal(answer.status, 200, 'the request in flight was answered');
    assert.match(answer.body, /"version":"v1"/);
    const exit = await srv.waitExit(30_000);
    assert.equal(exit.code, 0, srv.tail());
    assert.ok(
      srv.lines.slice(mark).some((l) => l.event === 'server.stopped'),
      'the stop was carried out gracefully',
    );
    for (const pid of workers) assert.equal(processAlive(pid), false, `worker ${pid} left behind`);
  });
}
