// --worker-max-memory: a worker whose RSS stays over the limit is replaced, its replacement first, and
// no request fails. Bad sizes are refused in one line.
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { after, test } from 'node:test';
import { ctl } from '../helpers/control.js';
import { assertNoFailedRequests, getJson, Load } from '../helpers/load.js';
import { childPids, FIXTURES, killAll, runNserve, startNserve, tmpDir, until } from '../helpers/server.js';

after(killAll);

test('a worker over --worker-max-memory is replaced under load with zero failed requests', {
  timeout: 60_000,
}, async (t) => {
  const state = path.join(tmpDir(t), 'nserve.state');
  const srv = startNserve([
    'start',
    `${FIXTURES}/memory/grow.mjs`,
    '-w',
    '2',
    '--bind',
    'tcp://127.0.0.1:0',
    '--worker-max-memory',
    '150MB',
    '--control-url',
    'auto',
    '--state',
    state,
  ]);
  t.after(() => srv.kill());
  const port = await srv.port(20000);
  const before = childPids(srv.pid);
  const load = new Load({ port, keepAlive: 2, newConnection: 2 });
  await load.warmedUp();
  // Grow one worker well past the limit (each /grow keeps 40 MB alive in the worker that answers).
  const fat = Number((await getJson(port, '/')).body.pid);
  let kept = 0;
  await until(`worker ${fat} keeping 160 MB`, async () => {
    const a = await getJson(port, `/grow?pid=${fat}`);
    if (Number(a.body.pid) === fat) kept = Number(a.body.kept);
    return kept >= 4;
  });
  const replaced = await srv.waitForEvent('worker.memory.exceeded', 15000);
  assert.equal(replaced.workerPid, fat);
  assert.equal(replaced.code, 'ERR_NSERVE_WORKER_MEMORY');
  await until(
    'the fat worker gone, two workers again',
    () => {
      const now = childPids(srv.pid);
      return !now.includes(fat) && now.length === 2;
    },
    20000,
  );
  await load.roundsSince(performance.now(), 3);
  assertNoFailedRequests(await load.stop());
  const stats = await ctl(['-S', state, 'stats', '--json']);
  assert.equal(stats.code, 0, stats.stderr);
  assert.equal(
    (JSON.parse(stats.stdout) as { lifetime: { memoryReplacements: number } }).lifetime.memoryReplacements,
    1,
  );
  const other = before.find((p) => p !== fat);
  assert.ok(other !== undefined && childPids(srv.pid).includes(other), 'the other worker was left alone');
});

test('a bad --worker-max-memory is refused: one line, exit 2', { timeout: 30_000 }, async () => {
  for (const bad of ['lots', '10MB', '-5']) {
    const r = await runNserve(['start', 'examples/hello.mjs', '-w', '2', '--worker-max-memory', bad]);
    assert.equal(r.code, 2, bad);
    assert.match(r.stderr, /^nserve: error: invalid --worker-max-memory: .*a size such as 512MB.*\n$/, bad);
  }
});
