// The worker's event-loop delay (cluster/worker-heartbeat.ts): its sparse histogram answers percentiles
// exactly as Node's own (HDR, 3 significant digits, which monitorEventLoopDelay keeps) for the same
// samples, without Node's ~360 KB of counts.
import assert from 'node:assert/strict';
import { createHistogram } from 'node:perf_hooks';
import { test } from 'node:test';
import { LoopDelay } from '../../src/cluster/worker-heartbeat.js';

function both(samples: readonly number[]): { ours: LoopDelay; node: ReturnType<typeof createHistogram> } {
  const ours = new LoopDelay(20);
  const node = createHistogram({ lowest: 1, highest: Number.MAX_SAFE_INTEGER, figures: 3 });
  for (const ns of samples) {
    ours.record(ns);
    node.record(ns);
  }
  return { ours, node };
}

test('loop delay: the percentiles of Node’s HDR histogram, for the same samples', () => {
  let seed = 7;
  const rand = (): number => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed / 2 ** 31;
  };
  const sets: number[][] = [
    [20_000_000],
    [1, 2, 3, 2047, 2048, 2049, 4095, 4096, 4097],
    // one heartbeat of a 20 ms timer: 50 firings, some late
    Array.from(
      { length: 50 },
      (_, i) => 20_000_000 + Math.floor(rand() * 400_000) + (i === 17 ? 35_000_000 : 0),
    ),
    // every count from 1 to 120 (hdr rounds the rank: 0.99 × 60 = 59.4 → the 59th)
    ...Array.from({ length: 120 }, (_, n) =>
      Array.from({ length: n + 1 }, () => 19_000_000 + Math.floor(rand() * 30_000_000)),
    ),
    // a long drain: 5 s blocked once, many ordinary firings
    [...Array.from({ length: 3000 }, () => 20_000_000 + Math.floor(rand() * 100_000)), 5_020_000_000],
  ];
  for (const samples of sets)
    for (const p of [50, 90, 99, 99.9, 100]) {
      const { ours, node } = both(samples);
      assert.equal(ours.percentile(p), node.percentile(p), `p${p} of ${samples.length} samples`);
    }
});

test('loop delay: 0 without samples, and reset forgets', () => {
  const { ours, node } = both([]);
  assert.equal(ours.percentile(99), 0);
  assert.equal(node.percentile(99), 0);
  ours.record(25_000_000);
  assert.ok(ours.percentile(99) >= 25_000_000);
  ours.reset();
  assert.equal(ours.percentile(99), 0);
});
