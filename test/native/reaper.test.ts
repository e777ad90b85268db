import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Child, fixture, killPid } from './helpers.js';

test('the exit watch reports an inherited child killed with SIGKILL within milliseconds, reaped, libuv unaffected', {
  timeout: 30_000,
}, async (t) => {
  // `exec` keeps the PID: the sleeper is the node image's child, unknown to its libuv.
  const child = new Child(t, '/bin/sh', [
    '-c',
    `sleep 30 & exec "${process.execPath}" "${fixture('reaper.mjs')}" $!`,
  ]);
  const { watching, watched } = await child.json<{ watching: number; watched: boolean }>('watching');
  t.after(() => killPid(watching));
  assert.ok(watched);
  // Let libuv's own child exit first: the watch must not take its exit.
  await new Promise((r) => setTimeout(r, 300));
  process.kill(child.pid, 'SIGUSR2');
  await new Promise((r) => setTimeout(r, 50));
  process.kill(watching, 'SIGKILL');
  const seen = await child.json<{ exited: unknown; afterMs: number; watched: boolean; libuvChild: number }>(
    'exited',
  );
  assert.deepEqual(seen.exited, { pid: watching, code: null, signal: 'SIGKILL' });
  assert.ok(seen.afterMs < 200, `seen on SIGCHLD within milliseconds (${seen.afterMs} ms after the kill)`);
  assert.equal(seen.watched, false);
  assert.equal(seen.libuvChild, 3, "libuv's own child still reported its exit code");
  assert.deepEqual(await child.exited(), { code: 0, signal: null });
});
