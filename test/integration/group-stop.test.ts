// Stops that reach every process of the group: Ctrl-C in a terminal (SIGINT to the foreground process
// group), `kill -TERM -PGID`, systemd's default KillMode=control-group. With an app that exits at once on
// SIGTERM/SIGINT (as Next.js's server does), every request in flight completes, nothing is replaced,
// the exit status is 0, and the app's own listener runs after the drain.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, test } from 'node:test';
import { getJson } from '../helpers/load.js';
import { FIXTURES, isEvent, killAll, serveApp, tmpDir } from '../helpers/server.js';

after(killAll);

const APP = path.join(FIXTURES, 'operator/exit-at-once.mjs');
const SLOW = 6;

for (const workers of [undefined, 2] as const) {
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    const mode = workers === undefined ? 'single mode' : `cluster -w ${workers}`;
    test(`${mode}: ${signal} to the whole process group drains: ${SLOW} slow requests in flight all complete, exit 0, nothing replaced`, {
      timeout: 60_000,
    }, async (t) => {
      const marker = path.join(tmpDir(t), 'exits');
      const { srv, port } = await serveApp(t, APP, {
        ...(workers === undefined ? {} : { workers }),
        env: { EXIT_MARKER: marker },
      });
      const inFlight = Array.from({ length: SLOW }, () => getJson(port, '/slow'));
      await new Promise((r) => setTimeout(r, 300));
      const mark = srv.lines.length;
      process.kill(-srv.pid, signal); // the group: the server, and its workers in cluster mode
      const replies = await Promise.allSettled(inFlight);
      assert.deepEqual(
        replies.map((r) => (r.status === 'fulfilled' ? r.value.status : String(r.reason))),
        Array(SLOW).fill(200),
        'every request in flight completed',
      );
      assert.deepEqual(await srv.waitExit(20_000), { code: 0, signal: null });
      const after = srv.lines.slice(mark);
      assert.deepEqual(
        after
          .filter(
            (l) =>
              isEvent(
                l,
                'worker.leaving',
                'worker.memory.exceeded',
                'worker.protocol.broken',
                'worker.replaced',
                'worker.replace.failed',
                'worker.spawned',
                'worker.exited',
              ) || /ERR_SERVER_NOT_RUNNING/.test(String(l.msg)),
          )
          .map((l) => String(l.msg)),
        [],
        'no worker left, was replaced or spawned during the stop',
      );
      // The app's own listener ran, after the drain: nothing was open any more.
      const exits = fs.readFileSync(marker, 'utf8').trim().split('\n');
      assert.equal(exits.length, workers ?? 1, `one exit per serving process: ${exits.join('; ')}`);
      for (const line of exits) assert.match(line, new RegExp(` ${signal} open=0$`));
    });
  }
}

test('single mode: an app stop listener whose cleanup never settles does not keep the stopped server alive', {
  timeout: 30_000,
}, async (t) => {
  const marker = path.join(tmpDir(t), 'exits');
  const { srv } = await serveApp(t, APP, { env: { EXIT_MARKER: marker, HANG_ON_STOP: '1' } });
  const started = Date.now();
  srv.signal('SIGTERM');
  assert.deepEqual(await srv.waitExit(10_000), { code: 0, signal: null });
  assert.match(fs.readFileSync(marker, 'utf8'), / SIGTERM open=0\n$/, "the app's listener ran");
  assert.ok(Date.now() - started < 6000, `exited ${Date.now() - started} ms after the signal (bound: 2 s)`);
});
