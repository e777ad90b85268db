// A SIGTERM that lands while a hot restart execs (between the old image's last line and the new
// image's first) is recorded in the old image, blocked through Node's start-up in the new one, and taken
// once nserve's handlers are in place: in cluster mode the new image has adopted the workers by then, and
// they drain. A request in flight is answered, the server exits 0, and no worker is left behind. Before,
// the new image died of it (Node's own SIGTERM handler), and every worker with it.
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

for (const [mode, workers, delayMs] of [
  ['-w 2', 2, 0],
  ['-w 2', 2, 30],
  ['-w 2', 2, 80],
  ['single mode', undefined, 0],
  ['single mode', undefined, 40],
] as const) {
  test(`${mode}: SIGTERM ${delayMs} ms after a hot restart's exec: the in-flight request is answered, exit 0`, {
    timeout: 60_000,
  }, async (t) => {
    const root = makeReleases(t, { v1: { requestMs: 1500 }, v2: { requestMs: 1500, bootMs: 500 } }, 'v1');
    const { srv, port } = await serveCurrent(t, root, workers === undefined ? {} : { workers });
    const children = childPids(srv.pid);
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
    for (const pid of children) assert.equal(processAlive(pid), false, `worker ${pid} left behind`);
  });
}
