// A worker's heartbeat and drained reports are checked for plausible figures: an implausible one is
// dropped and logged (rate-limited), and the worker is not replaced for it; a wrong shape still is.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { test } from 'node:test';
import { pino } from 'pino';
import { parseFromWorker } from '../../src/cluster/protocol.js';
import { WorkerHandle } from '../../src/cluster/worker-handle.js';
import type { WorkerEvent } from '../../src/cluster/worker-states.js';
import { TOTALS_LENGTH } from '../../src/metrics/requests.js';
import * as native from '../../src/native/index.js';

const beat = {
  t: 'heartbeat',
  requests: 5,
  inFlight: 1,
  eventLoopDelayMs: 0.25,
  rss: 50_000_000,
  longLived: 0,
};
const totals = (): number[] => [...new Array<number>(TOTALS_LENGTH - 1).fill(1), 0.5];

test('a plausible heartbeat and drained parse as they are', () => {
  assert.deepEqual(parseFromWorker(beat), beat);
  assert.deepEqual(parseFromWorker({ ...beat, totals: totals() }), { ...beat, totals: totals() });
  assert.deepEqual(parseFromWorker({ t: 'drained', forced: 0, requests: 9, totals: totals() }), {
    t: 'drained',
    forced: 0,
    requests: 9,
    totals: totals(),
  });
});

test('implausible figures: counters at 1e308, negative, NaN (null), fractions, out-of-range totals', () => {
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ ...beat, requests: 1e308 }, /^requests 1e\+308 is not an integer/],
    [{ ...beat, requests: -1 }, /^requests -1 is negative/],
    [{ ...beat, inFlight: null }, /^inFlight null is not a finite number/],
    [{ ...beat, inFlight: 2.5 }, /^inFlight 2\.5 is not an integer/],
    [{ ...beat, longLived: 2 ** 30 }, /^longLived \d+ is above/],
    [{ ...beat, rss: 1.5 }, /^rss 1\.5 is not an integer/],
    [{ ...beat, eventLoopDelayMs: 1e12 }, /^eventLoopDelayMs 1000000000000 is above/],
    [{ ...beat, totals: [1, 2] }, /^totals has 2 entries/],
    [{ ...beat, totals: totals().map((n, i) => (i === 0 ? -3 : n)) }, /^totals\[0\] -3 is negative/],
    [{ ...beat, totals: totals().map((n, i) => (i === 3 ? 0.5 : n)) }, /^totals\[3\] 0\.5 is not an integer/],
    [{ ...beat, totals: totals().map((n, i) => (i === 1 ? null : n)) }, /^totals\[1\] null/],
  ];
  for (const [msg, reason] of cases) {
    const parsed = parseFromWorker(msg);
    assert.equal(typeof parsed, 'object', JSON.stringify(msg));
    assert.equal((parsed as { t: string }).t, 'implausible', JSON.stringify(parsed));
    assert.equal((parsed as { report: string }).report, 'heartbeat');
    assert.match((parsed as { reason: string }).reason, reason);
  }
  const drained = parseFromWorker({ t: 'drained', forced: -1, requests: 0 });
  assert.deepEqual(drained, { t: 'implausible', report: 'drained', reason: 'forced -1 is negative' });
});

test('a wrong shape is still a protocol violation', () => {
  for (const bad of [
    { ...beat, requests: '5' },
    { t: 'heartbeat', requests: 0 },
    { ...beat, totals: 'x' },
    { ...beat, totals: new Array(65).fill(0) },
    { ...beat, totals: ['1'] },
    { t: 'drained', forced: 0 },
  ])
    assert.equal(typeof parseFromWorker(bad), 'string', JSON.stringify(bad));
});

test('the master drops implausible reports, logs them once a minute at most, and keeps the worker', async () => {
  const [ours, peer] = native.socketpair();
  // An adopted worker is watched by PID (a reaper): a live process of ours stands in for it.
  const stand = spawn('sleep', ['30'], { stdio: 'ignore' });
  const lines: Record<string, unknown>[] = [];
  const log = pino({ level: 'info' }, { write: (s: string) => lines.push(JSON.parse(s)) });
  const w = new WorkerHandle(
    {
      index: 3,
      generation: 0,
      pid: stand.pid!,
      channelFd: ours,
      directory: '/',
      child: undefined,
      adopted: { keys: [], offered: [], draining: false, booted: true },
    },
    log,
  );
  const events: WorkerEvent[] = [];
  w.on((e) => events.push(e));
  const send = (m: object): void => native.sendFds(peer, [], Buffer.from(JSON.stringify(m)));
  try {
    send({ ...beat, requests: 7 });
    for (let i = 0; i < 20; i++) send({ ...beat, requests: 1e308, rss: -1 });
    send({ ...beat, inFlight: Number.NaN });
    send({ ...beat, requests: 8 });
    const deadline = Date.now() + 5000;
    while (w.stats.requests !== 8 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    assert.equal(w.stats.requests, 8, 'the plausible heartbeats are believed');
    assert.equal(w.violation, undefined);
    assert.ok(!events.some((e) => e.t === 'violation'), 'no violation: the worker is not replaced');
    assert.equal(w.implausibleDropped, 21);
    assert.equal(w.alive, true);
    const warned = lines.filter((l) => l.event === 'worker.report.implausible');
    assert.equal(warned.length, 1, JSON.stringify(warned));
    assert.equal(warned[0]?.worker, 3);
    assert.equal(warned[0]?.report, 'heartbeat');
    assert.match(String(warned[0]?.reason), /^requests 1e\+308 is not an integer/);
    assert.ok(!events.some((e) => e.t === 'heartbeat' && e.requests > 8));
  } finally {
    w.channel.close();
    native.close(peer);
    stand.kill('SIGKILL');
  }
});
