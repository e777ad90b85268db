import assert from 'node:assert/strict';
import * as os from 'node:os';
import { test } from 'node:test';
import { canaryRecord, judgeCanary, MIN_REQUESTS, sampleOf } from '../../src/cluster/canary.js';
import { phases } from '../../src/cluster/phased-restart.js';
import { describeConfig } from '../../src/config/describe.js';
import { buildConfig, type CliOptions, type UserConfig } from '../../src/config/index.js';
import { RestartHistory } from '../../src/restart/history.js';

const build = (cli: CliOptions, file: UserConfig = {}) =>
  buildConfig({ app: 'app.mjs', cli, file, cwd: os.tmpdir() });

test('a canary answering 30% 5xx against healthy old workers fails, naming both rates and sample sizes', () => {
  const v = judgeCanary({ requests: 100, errors: 30 }, { requests: 120, errors: 0 }, 3000);
  assert.equal(v.ok, false);
  assert.ok(v.z > 2.326, String(v.z));
  assert.match(v.summary, /30\.0% \(30\/100 requests\) vs old workers 0\.0% \(0\/120\)/);
  assert.match(v.summary, /over 3\.0 s; failed: fails above 5\.0%/);
});

test('noise does not fail a canary: same rate, or worse but under the margin, or not significant', () => {
  assert.equal(judgeCanary({ requests: 200, errors: 10 }, { requests: 200, errors: 10 }, 3000).ok, true);
  // 4% vs 0%: under old + 5 points
  assert.equal(judgeCanary({ requests: 500, errors: 20 }, { requests: 500, errors: 0 }, 3000).ok, true);
  // 3 of 25 (12%) vs 1 of 25 (4%): above the threshold, not significant at p < 0.01
  const v = judgeCanary({ requests: 25, errors: 3 }, { requests: 25, errors: 1 }, 3000);
  assert.equal(v.ok, true);
  assert.ok(v.z < 2.326);
  // high old rate: the threshold is twice it
  assert.equal(judgeCanary({ requests: 400, errors: 80 }, { requests: 400, errors: 50 }, 3000).ok, true);
  assert.equal(judgeCanary({ requests: 400, errors: 120 }, { requests: 400, errors: 50 }, 3000).ok, false);
});

test('fewer than MIN_REQUESTS canary requests: inconclusive, the rollout goes on', () => {
  const v = judgeCanary(
    { requests: MIN_REQUESTS - 1, errors: MIN_REQUESTS - 1 },
    { requests: 100, errors: 0 },
    9000,
  );
  assert.equal(v.ok, true);
  assert.equal(v.inconclusive, true);
  assert.match(v.summary, /inconclusive/);
});

test('no baseline (old workers answered too few): the canary is tested against 5%', () => {
  const bad = judgeCanary({ requests: 40, errors: 12 }, { requests: 3, errors: 0 }, 3000);
  assert.equal(bad.ok, false);
  assert.equal(bad.baseline, false);
  assert.match(bad.summary, /no baseline/);
  assert.equal(judgeCanary({ requests: 40, errors: 1 }, { requests: 0, errors: 0 }, 3000).ok, true);
});

test('the verdict is kept in numbers on the restart record, and survives the hand-off; garbage does not', () => {
  const record = canaryRecord(
    judgeCanary({ requests: 100, errors: 30 }, { requests: 120, errors: 0 }, 3004.6),
  );
  assert.deepEqual(
    { ...record, summary: undefined, z: undefined },
    {
      ok: false,
      inconclusive: false,
      canary: { requests: 100, errors: 30 },
      old: { requests: 120, errors: 0 },
      baseline: true,
      threshold: 0.05,
      windowMs: 3005,
      summary: undefined,
      z: undefined,
    },
  );
  const left = canaryRecord({ ok: false, summary: 'the canary is leaving (uncaught exception: x)' });
  assert.deepEqual(left, {
    ok: false,
    inconclusive: false,
    summary: 'the canary is leaving (uncaught exception: x)',
  });
  const base = { id: 1, kind: 'phased', started: '2026-11-29T00:00:00.000Z' };
  const history = RestartHistory.fromHandoff([
    { ...base, canary: record },
    { ...base, id: 2, canary: { ok: 'yes', summary: 1 } },
    {
      ...base,
      id: 3,
      canary: { ok: true, summary: 's', canary: { requests: -1, errors: 0 }, z: 'NaN', windowMs: 1.5 },
    },
  ]);
  const [a, b, c] = history.toHandoff();
  assert.deepEqual(a?.canary, record);
  assert.equal(b?.canary, undefined);
  assert.deepEqual(c?.canary, { ok: true, inconclusive: false, summary: 's' });
});

test('requests and 5xx are read from the totals vector (1xx..5xx first)', () => {
  assert.deepEqual(sampleOf([0, 7, 1, 2, 3, 99, 99]), { requests: 13, errors: 3 });
});

test('phases: the canary alone first, then N at a time', () => {
  assert.deepEqual(phases(4, 1, false), [[0], [1], [2], [3]]);
  assert.deepEqual(phases(4, 2, false), [
    [0, 1],
    [2, 3],
  ]);
  assert.deepEqual(phases(4, 2, true), [[0], [1, 2], [3]]);
  assert.deepEqual(phases(3, 5, false), [[0, 1, 2]]);
  assert.deepEqual(phases(1, 1, true), [[0]]);
});

test('--canary takes a duration; --phase-concurrency an integer up to the worker count', () => {
  assert.equal(build({ workers: '2', canary: '3s' }).canaryMs, 3000);
  assert.equal(build({ workers: '2', canary: '500ms' }).canaryMs, 500);
  assert.equal(build({ workers: '2' }, { canary: 1.5 }).canaryMs, 1500);
  assert.equal(build({ workers: '2' }, { canary: '2m' }).canaryMs, 120_000);
  assert.equal(build({ workers: '2' }).canaryMs, undefined);
  assert.equal(build({ workers: '4', phaseConcurrency: '2' }).phaseConcurrency, 2);
  assert.equal(build({ workers: '4' }).phaseConcurrency, 1);
  assert.equal(describeConfig(build({ workers: '2', canary: '3s' })).canary?.value, '3000ms');
  const bad: [CliOptions, UserConfig, RegExp][] = [
    [
      { workers: '2', canary: 'soon' },
      {},
      /invalid --canary: "soon": expected a duration such as 500ms, 3s or 2m/,
    ],
    [{ workers: '2', canary: '0s' }, {}, /invalid --canary: "0s"/],
    [{ workers: '2' }, { canary: -1 }, /invalid config key canary: -1/],
    [
      { workers: '2', phaseConcurrency: '3' },
      {},
      /invalid --phase-concurrency: "3": expected an integer from 1 to 2/,
    ],
    [{ workers: '2' }, { phaseConcurrency: 0 }, /invalid config key phaseConcurrency: 0/],
    [{ canary: '3s' }, {}, /invalid --canary: "3s": expected cluster mode/],
  ];
  for (const [cli, file, pattern] of bad) {
    assert.throws(
      () => build(cli, file),
      (err: Error & { code?: string }) => {
        assert.equal(err.code, 'ERR_NSERVE_INVALID_CONFIG');
        assert.match(err.message, pattern);
        assert.ok(!err.message.includes('\n'));
        return true;
      },
    );
  }
});
