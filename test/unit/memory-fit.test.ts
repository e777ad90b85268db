// The fit arithmetic on fixture numbers: how many more workers fit, and which strategy a cluster hot
// restart takes (hot, staged, phased, refused) by --restart-overflow.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { describeRestartDone } from '../../src/cli/ctl-format.js';
import {
  extraWorkersThatFit,
  phaseConcurrencyThatFits,
  planHotRestart,
  RESTART_OVERFLOWS,
} from '../../src/memory/fit.js';
import { RestartHistory } from '../../src/restart/history.js';

const MB = 1024 ** 2;

// The pod: -w 4, ~120 MB of anonymous memory per worker, 551 MB in use, a limit of 827 MB.
const pod = { limit: 827 * MB, limited: true, workingSet: 551 * MB };
const anon = [120 * MB, 118 * MB, 122 * MB, 120 * MB];

test('extra workers that fit: the headroom over the mean RssAnon with a 10% margin', () => {
  const fit = extraWorkersThatFit(pod, anon);
  assert.equal(fit.headroom, 276 * MB);
  assert.equal(fit.perWorker, Math.round(120 * MB * 1.1));
  assert.equal(fit.extra, 2); // 276 / 132 = 2.09
  // Exactly at the boundary: 3 × 132 MB fit in 396 MB, not in one byte less.
  const per = Math.round(120 * MB * 1.1);
  assert.equal(extraWorkersThatFit({ ...pod, workingSet: pod.limit - 3 * per }, [120 * MB]).extra, 3);
  assert.equal(extraWorkersThatFit({ ...pod, workingSet: pod.limit - 3 * per + 1 }, [120 * MB]).extra, 2);
  // Over the limit already (page cache counted out, a spike): headroom 0, nothing fits.
  assert.deepEqual(extraWorkersThatFit({ ...pod, workingSet: 900 * MB }, anon).extra, 0);
});

test('no limit, or no worker to estimate from: everything fits (nothing is planned against the host)', () => {
  assert.equal(extraWorkersThatFit({ ...pod, limited: false }, anon).extra, Infinity);
  assert.equal(extraWorkersThatFit(pod, []).extra, Infinity);
  assert.equal(extraWorkersThatFit(pod, [0, Number.NaN]).perWorker, null);
  const plan = planHotRestart(extraWorkersThatFit({ ...pod, limited: false }, anon), 4, 'staged');
  assert.equal(plan.strategy, 'hot');
  assert.equal(plan.preboot, 4);
  assert.equal(plan.reason, 'no memory limit applies');
});

test('a hot restart that fits runs as today: all N new workers boot beside the old ones', () => {
  const roomy = extraWorkersThatFit({ ...pod, limit: 2048 * MB }, anon);
  for (const overflow of RESTART_OVERFLOWS) {
    const plan = planHotRestart(roomy, 4, overflow);
    assert.equal(plan.strategy, 'hot');
    assert.equal(plan.preboot, 4);
    assert.match(plan.reason, /^4 new workers \(~528 MB\) fit in the headroom \(1.5 GB\)$/);
  }
});

test('staged (the default): as many new workers as fit boot first, the rest after the old ones drained', () => {
  const plan = planHotRestart(extraWorkersThatFit(pod, anon), 4, 'staged');
  assert.equal(plan.strategy, 'staged');
  assert.equal(plan.preboot, 2);
  assert.equal(
    plan.reason,
    '4 new workers need ~528 MB beside the old ones (~132 MB each), the headroom is 276 MB: staged (2 fit; booting those, then draining the old workers, then booting the other 2)',
  );
});

test('phased: a phased restart, at most as many at a time as fit and --phase-concurrency allow', () => {
  const fit = extraWorkersThatFit(pod, anon);
  assert.equal(planHotRestart(fit, 4, 'phased', 1).concurrency, 1);
  assert.equal(planHotRestart(fit, 4, 'phased', 3).concurrency, 2);
  const plan = planHotRestart(fit, 4, 'phased', 3);
  assert.equal(plan.strategy, 'phased');
  assert.match(plan.reason, /: phased restart instead \(--restart-overflow phased; 2 fit at a time\)$/);
});

test('refuse: no restart, and the verdict gives the numbers', () => {
  const plan = planHotRestart(extraWorkersThatFit(pod, anon), 4, 'refuse');
  assert.equal(plan.strategy, 'refused');
  assert.equal(plan.preboot, 0);
  assert.match(
    plan.reason,
    /need ~528 MB .* the headroom is 276 MB \(2 fit\): refused \(--restart-overflow refuse\)$/,
  );
});

test('not even one new worker fits: every overflow refuses (staged needs one booted to prove the new code)', () => {
  const tight = extraWorkersThatFit({ ...pod, workingSet: 760 * MB }, anon);
  assert.equal(tight.extra, 0);
  for (const overflow of RESTART_OVERFLOWS) {
    const plan = planHotRestart(tight, 4, overflow);
    assert.equal(plan.strategy, 'refused', overflow);
    assert.match(
      plan.reason,
      /^not even one new worker fits beside the old ones: 4 new workers need ~528 MB beside the old ones \(~132 MB each\), the headroom is 67 MB \(free memory, raise the limit, or lower -w\)$/,
    );
  }
});

test('phase concurrency that fits: wanted, fewer, or 0', () => {
  const fit = extraWorkersThatFit(pod, anon);
  assert.equal(phaseConcurrencyThatFits(fit, 1), 1);
  assert.equal(phaseConcurrencyThatFits(fit, 4), 2);
  assert.equal(phaseConcurrencyThatFits(extraWorkersThatFit({ ...pod, workingSet: 800 * MB }, anon), 1), 0);
  assert.equal(phaseConcurrencyThatFits(extraWorkersThatFit({ ...pod, limited: false }, anon), 3), 3);
});

test('the strategy crosses the exec with the record, and --wait names it', () => {
  const h = new RestartHistory();
  const r = h.begin('hot');
  Object.assign(r, { strategy: 'staged', preboot: 2, memory: 'why' });
  const [back] = RestartHistory.fromHandoff(JSON.parse(JSON.stringify(h.toHandoff()))).records;
  assert.equal(back?.strategy, 'staged');
  assert.equal(back?.preboot, 2);
  const [bad] = RestartHistory.fromHandoff([{ ...r, strategy: 'gamble', preboot: -1 }]).records;
  assert.equal(bad?.strategy, undefined);
  assert.equal(bad?.preboot, undefined);
  h.finish(r, 'ok');
  assert.match(
    describeRestartDone(r),
    /^hot restart #1 \(staged, did not fit in memory: 2 new workers booted before the old ones drained\) done in /,
  );
});
