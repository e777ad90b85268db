// --phase-concurrency N: a phased restart replaces N workers at a time, each phase surge-first (the new
// workers accept on the old ones' slots before those drain), so no request fails.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Load, stopWithoutFailures } from '../helpers/load.js';
import { makeReleases, versions } from '../helpers/releases.js';
import { restart } from '../helpers/restart.js';
import { isEvent, killAll, serveCurrent } from '../helpers/server.js';

test('--phase-concurrency 2 with -w 4: two phases of two workers, zero failed requests under load', async (t) => {
  t.after(killAll);
  const root = makeReleases(t, versions(2), 'v1');
  const { srv, port } = await serveCurrent(t, root, { workers: 4, args: ['--phase-concurrency', '2'] });
  const load = new Load({ port, keepAlive: 4, newConnection: 2, post: 1 });
  t.after(() => load.stop());
  await load.warmedUp();
  const { lines, line } = await restart(srv, 'phased', { release: { root, version: 'v2' } });
  // The index of the line naming `event` for worker `index` (worker 0 is "worker 1/4").
  const at = (event: 'worker.spawned' | 'restart.phased.worker-replaced', index: number): number => {
    const i = lines.findIndex((l) => isEvent(l, event) && l.worker === index);
    assert.ok(i >= 0, `no ${event} line for worker ${index}`);
    return i;
  };
  // Workers 0 and 1 are spawned before either is replaced; 2 and 3 only once both were.
  for (const i of [0, 1]) assert.ok(at('worker.spawned', i) < at('restart.phased.worker-replaced', 0));
  for (const i of [2, 3]) assert.ok(at('worker.spawned', i) > at('restart.phased.worker-replaced', 1));
  assert.ok(at('worker.spawned', 3) < at('restart.phased.worker-replaced', 2));
  // Each replacement's spawn → accepting time is logged, after its spawn → booted.
  const replaced = lines.filter((l) => isEvent(l, 'restart.phased.worker-replaced'));
  assert.equal(replaced.length, 4);
  for (const l of replaced) {
    assert.ok(
      typeof l.ms === 'number' && typeof l.bootedMs === 'number' && l.ms >= l.bootedMs,
      JSON.stringify(l),
    );
  }
  t.diagnostic(`${line.msg}; spawn → accepting ${replaced.map((l) => `${l.ms} ms`).join(', ')}`);
  // From the end of the rollout on, only the new release answers.
  const doneAt = srv.receivedAt(line);
  await load.roundsSince(doneAt, 3);
  const after = load.done.filter((d) => d.start > doneAt);
  assert.ok(after.length > 0 && after.every((d) => d.version === 'v2'));
  const pids = new Set(after.map((d) => d.pid));
  await stopWithoutFailures(load, t);
  assert.ok(pids.size >= 2, `${pids.size} new workers answered`);
});
