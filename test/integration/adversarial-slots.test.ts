// More listening sockets than one channel message can carry to a worker: refused at start, never a server
// that reports booted (and READY) while no worker can take its slots.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { after, test } from 'node:test';
import { assertNoFailedRequests, getJson, Load } from '../helpers/load.js';
import {
  CLI,
  childPids,
  isEvent,
  killAll,
  processAlive,
  ROOT,
  runNserve,
  startNserve,
  until,
} from '../helpers/server.js';

after(killAll);

const WHY = /one channel message carries at most 64 descriptors\)$/;

for (const [args, pattern] of [
  [
    ['-w', '1', '--slots', '65'],
    /^nserve: error: invalid --slots: "65": expected an integer from 1 to 64 with 1 TCP bind \(/,
  ],
  [
    ['-w', '4', '--slots', '256'],
    /^nserve: error: invalid --slots: "256": expected an integer from 1 to 64 /,
  ],
  [
    ['-w', '2', '--slots', '40', '--bind', 'tcp://127.0.0.1:0', '--bind', 'tcp://127.0.0.2:0'],
    /^nserve: error: invalid --slots: "40": expected an integer from 1 to 32 with 2 TCP binds \(/,
  ],
] as const) {
  test(`65+ sockets per worker are refused at start: ${args.join(' ')}`, async () => {
    const r = await runNserve(['start', 'examples/hello.mjs', '--bind', 'tcp://127.0.0.1:0', ...args]);
    assert.equal(r.code, 2, r.stderr);
    const lines = r.stderr.trim().split('\n');
    assert.equal(lines.length, 1, r.stderr);
    assert.match(lines[0] ?? '', pattern);
    assert.match(lines[0] ?? '', WHY);
    assert.ok(!r.stdout.some((l) => isEvent(l, 'server.booted')), 'never reported booted');
  });
}

test('64 slots on one worker (the limit) boot and serve', async (t) => {
  const srv = startNserve([
    'start',
    'examples/hello.mjs',
    '-w',
    '1',
    '--slots',
    '64',
    '--bind',
    'tcp://127.0.0.1:0',
  ]);
  t.after(() => srv.kill());
  const port = await srv.port(20000);
  for (let i = 0; i < 20; i++) assert.equal((await getJson(port)).status, 200);
  assert.ok(!srv.lines.some((l) => isEvent(l, 'slots.rebalance.failed')));
});

test('-w 2 --slots 64: a killed worker lends all 64 slots to the survivor, and the site keeps serving', async (t) => {
  const srv = startNserve([
    'start',
    'examples/hello.mjs',
    '-w',
    '2',
    '--slots',
    '64',
    '--bind',
    'tcp://127.0.0.1:0',
  ]);
  t.after(() => srv.kill());
  const port = await srv.port(20000);
  const [victim] = childPids(srv.pid);
  assert.ok(victim !== undefined);
  const load = new Load({ port, newConnection: 2 });
  process.kill(victim, 'SIGKILL');
  await until('the killed worker replaced', () => {
    const now = childPids(srv.pid);
    return now.length === 2 && !now.includes(victim);
  });
  await new Promise((r) => setTimeout(r, 500));
  const result = await load.stop();
  // Requests the killed worker had accepted die with it; every other one is answered.
  assert.ok(result.ok > 0);
  assert.ok(result.failed <= 2, `${result.failed} failed: ${JSON.stringify(result.byKind)}`);
  assert.ok(!srv.lines.some((l) => isEvent(l, 'slots.rebalance.failed')));
  assert.ok(processAlive(srv.pid));
  assertNoFailedRequests(await new Load({ port, newConnection: 2 }).stop());
});

test('-w 65 without --slots gets 64 slots (workers share them) instead of being refused', () => {
  const out = execFileSync(
    process.execPath,
    [CLI, 'config', '--print', '--json', 'examples/hello.mjs', '-w', '65'],
    {
      cwd: ROOT,
      encoding: 'utf8',
      timeout: 15_000,
    },
  );
  const printed = JSON.parse(out) as { slots: { value: number; source: string } };
  assert.deepEqual(printed.slots, { value: 64, source: 'default' });
});
