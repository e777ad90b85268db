// Process titles as ps and top see them (/proc/PID/cmdline and /proc/PID/comm).
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { after, test } from 'node:test';
import { restart } from '../helpers/restart.js';
import { childPids, killAll, serveApp, until } from '../helpers/server.js';

after(killAll);

function cmdline(pid: number): string {
  return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')[0] ?? '';
}
function comm(pid: number): string {
  return fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
}

test('cluster: master and workers are named, with their generation, and renamed by a restart', async (t) => {
  const { srv } = await serveApp(t, 'examples/hello.mjs', { workers: 2 });
  assert.equal(cmdline(srv.pid), 'nserve master examples/hello.mjs gen 0');
  assert.equal(comm(srv.pid), 'nserve master e');
  const titles = childPids(srv.pid).map(cmdline).sort();
  assert.deepEqual(titles, ['nserve worker 0 gen 0', 'nserve worker 1 gen 0']);
  assert.deepEqual(childPids(srv.pid).map(comm).sort(), ['nserve worker 0', 'nserve worker 1']);
  await restart(srv, 'phased');
  await until(
    'the master title says gen 1',
    () => cmdline(srv.pid) === 'nserve master examples/hello.mjs gen 1',
  );
  await until('both workers are gen 1', () => {
    const now = childPids(srv.pid).map(cmdline).sort();
    return now.length === 2 && now.every((c, i) => c === `nserve worker ${i} gen 1`);
  });
  await restart(srv, 'hot');
  await until(
    'the master title says gen 2 after the exec',
    () => cmdline(srv.pid) === 'nserve master examples/hello.mjs gen 2',
  );
});

test('single: nserve single <app>, also after a hot restart', async (t) => {
  const { srv } = await serveApp(t, 'examples/hello.mjs');
  assert.equal(cmdline(srv.pid), 'nserve single examples/hello.mjs');
  await restart(srv, 'hot');
  assert.equal(cmdline(srv.pid), 'nserve single examples/hello.mjs');
});
