// Workers adopted across a cluster hot restart are not libuv's children in the new master image: their
// deaths must be seen by PID, not by their channel closing. An app that lets a child inherit its channel
// (spawn with stdio passed on) keeps the channel open after the worker dies.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, test } from 'node:test';
import { getJson, Load } from '../helpers/load.js';
import { now } from '../helpers/logged-process.js';
import { restart } from '../helpers/restart.js';
import { type Cleanup, childPids, killAll, serveApp, until, zombiePids } from '../helpers/server.js';

after(killAll);

/**
 * An app whose every worker spawns a detached `sleep 30` holding the worker's channel (fd 3 there), and
 * records its PID in `holders/`. The holders leave the test's process group: the test kills them by PID.
 */
function holdingApp(t: Cleanup): { dir: string; holders: string } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nserve-adopted-'));
  const holders = path.join(dir, 'holders');
  fs.mkdirSync(holders);
  fs.writeFileSync(
    path.join(dir, 'app.mjs'),
    `import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
const fd = Number(process.env.NSERVE_CHANNEL_FD);
if (Number.isInteger(fd)) {
  const holder = spawn('sleep', ['30'], { stdio: ['ignore', 'ignore', 'ignore', fd], detached: true });
  holder.unref();
  fs.writeFileSync(${JSON.stringify(holders)} + '/' + holder.pid, String(process.pid));
}
export default (req, res) => res.end(JSON.stringify({ pid: process.pid }));
`,
  );
  t.after(() => {
    for (const name of fs.readdirSync(holders)) {
      try {
        process.kill(Number(name), 'SIGKILL');
      } catch {
        // gone already
      }
    }
    fs.rmSync(dir, { recursive: true, force: true });
  });
  return { dir, holders };
}

/** `n` GETs one after another, each on a fresh connection: how many got no answer within `timeoutMs`. */
async function timeoutsOver(
  port: number,
  n: number,
  timeoutMs: number,
): Promise<{ timeouts: number; pids: Set<number> }> {
  let timeouts = 0;
  const pids = new Set<number>();
  for (let i = 0; i < n; i++) {
    try {
      const { body } = await getJson(port, '/', { timeoutMs });
      pids.add(Number(body.pid));
    } catch {
      timeouts++;
    }
  }
  return { timeouts, pids };
}

test('a worker adopted across a hot restart and SIGKILLed while a child holds its channel: seen, reaped, replaced', async (t) => {
  const { dir, holders } = holdingApp(t);
  const { srv, port } = await serveApp(t, 'app.mjs', { directory: dir, workers: 2 });
  await restart(srv, 'hot', { deadlineMs: 20_000 });
  // The old generation drained and exited with their channels still held: reaped all the same.
  await until('the old workers to be gone and reaped', () => childPids(srv.pid).length === 2, 10_000);
  await until('no zombie child of the master', () => zombiePids(srv.pid).length === 0, 3000);
  const adopted = childPids(srv.pid);
  await until(
    "every adopted worker's channel to be held by a child of its own",
    () => fs.readdirSync(holders).length >= 4,
    5000,
  );

  const load = new Load({ port, newConnection: 2, timeoutMs: 5000 });
  t.after(() => load.stop()); // a failed wait must not leave the clients looping
  await load.roundsSince(now(), 3);
  const victim = adopted[0]!;
  const mark = srv.lines.length;
  const killedAt = Date.now();
  process.kill(victim, 'SIGKILL');
  const exited = await srv.waitForEvent('worker.exited', 2000, mark);
  assert.equal(exited.workerPid, victim);
  assert.equal(exited.signal, 'SIGKILL');
  const replaced = await srv.waitForEvent('worker.replaced', 5000, mark);
  t.diagnostic(
    `death seen after ${Date.parse(String(exited.time)) - killedAt} ms, replaced after ${Date.now() - killedAt} ms`,
  );
  assert.equal(replaced.worker, exited.worker);
  await load.roundsSince(now(), 3);
  await load.stop();

  // No slot is left to the dead worker: every request on a fresh connection is answered.
  const { timeouts, pids } = await timeoutsOver(port, 30, 2000);
  assert.equal(timeouts, 0, `${timeouts} of 30 requests got no answer`);
  assert.ok(!pids.has(victim));
  assert.equal(pids.size, 2, `both workers answer (${[...pids].join(', ')})`);
  assert.deepEqual(zombiePids(srv.pid), [], 'the dead worker was reaped');
  assert.equal(childPids(srv.pid).length, 2);
});
