import assert from 'node:assert/strict';
import { test } from 'node:test';
import { METRICS_CHUNK, METRICS_MAX_PARTS, parseFromWorker } from '../../src/cluster/protocol.js';
import { parseWorkerReply, withLabels } from '../../src/metrics/json.js';
import { emptyTotals, REQUESTS, TOTALS_LENGTH, totalsMetrics } from '../../src/metrics/requests.js';
import { MetricsStore } from '../../src/metrics/store.js';
import { chunked } from '../../src/metrics/worker-reply.js';

test('parseFromWorker: metrics chunks are bounded and well-formed', () => {
  assert.deepEqual(parseFromWorker({ t: 'metrics', id: 5, part: 0, parts: 2, text: 'ab' }), {
    t: 'metrics',
    id: 5,
    part: 0,
    parts: 2,
    text: 'ab',
  });
  for (const bad of [
    { t: 'metrics', id: 5, part: 2, parts: 2, text: '' },
    { t: 'metrics', id: 5, part: 0, parts: METRICS_MAX_PARTS + 1, text: '' },
    { t: 'metrics', id: -1, part: 0, parts: 1, text: '' },
    { t: 'metrics', id: 5, part: 0, parts: 1, text: 'x'.repeat(METRICS_CHUNK + 1) },
    { t: 'metrics', id: 5, part: 0, parts: 1 },
    { t: 'heartbeat', requests: 0, inFlight: 0, eventLoopDelayMs: 0, rss: 0, longLived: 0, totals: ['-1'] },
    { t: 'drained', forced: 0, requests: 0, totals: 'x' },
  ])
    assert.equal(typeof parseFromWorker(bad), 'string', JSON.stringify(bad).slice(0, 80));
});

test('a worker reply is checked: names, labels and numbers that could not be injected into the format', () => {
  const good = {
    metrics: [{ name: 'a_b', help: 'h', type: 'gauge', values: [{ value: null, labels: { x: '1' } }] }],
  };
  const parsed = parseWorkerReply(JSON.stringify(good));
  assert.ok(typeof parsed !== 'string');
  assert.ok(Number.isNaN(parsed.metrics[0]!.values[0]!.value), 'null (NaN in JSON) is NaN');
  for (const bad of [
    '{',
    '[]',
    { metrics: [{ name: 'a b\nevil 1', help: '', type: 'gauge', values: [] }] },
    { metrics: [{ name: 'a', help: '', type: 'weird', values: [] }] },
    {
      metrics: [{ name: 'a', help: '', type: 'gauge', values: [{ value: 1, labels: { 'bad-label': 'x' } }] }],
    },
    { metrics: [{ name: 'a', help: '', type: 'gauge', values: [{ value: '1', labels: {} }] }] },
    { metrics: [], totals: [1, 2] },
  ])
    assert.equal(typeof parseWorkerReply(typeof bad === 'string' ? bad : JSON.stringify(bad)), 'string');
  // The master's labels win over whatever the worker said.
  const relabelled = withLabels(
    [
      {
        name: 'a',
        help: '',
        type: 'gauge',
        aggregator: 'sum',
        values: [{ value: 1, labels: { worker: '7' } }],
      },
    ],
    { worker: '0' },
  );
  assert.deepEqual(relabelled[0]!.values[0]!.labels, { worker: '0' });
});

test('chunked replies reassemble, and a reply too large is cut to its totals', () => {
  const reply = {
    metrics: [
      { name: 'a', help: 'x'.repeat(50_000), type: 'gauge' as const, aggregator: 'sum' as const, values: [] },
    ],
    totals: emptyTotals(),
  };
  const parts = chunked(reply, 20_000, 16);
  assert.equal(parts.length, 3);
  assert.deepEqual(JSON.parse(parts.join('')), reply);
  const cut = chunked(reply, 1000, 2);
  assert.deepEqual(JSON.parse(cut.join('')), { metrics: [], totals: reply.totals });
});

test('request counting: status classes and the duration histogram', () => {
  const before = REQUESTS.snapshot();
  REQUESTS.record(200, performance.now());
  REQUESTS.record(503, performance.now() - 300);
  const t = REQUESTS.snapshot();
  assert.equal(t.length, TOTALS_LENGTH);
  assert.equal(t[1]! - before[1]!, 1);
  assert.equal(t[4]! - before[4]!, 1);
  const [requests, duration] = totalsMetrics(new Map([['0', t]]));
  assert.equal(requests!.values.find((v) => v.labels.code === '2xx')?.value, t[1]);
  const inf = duration!.values.find((v) => v.labels.le === '+Inf')!.value;
  const le250 = duration!.values.find((v) => v.labels.le === '0.25')!.value;
  assert.equal(inf - le250, 1, 'the 300 ms request is above 0.25 s');
});

test('the store: an exited worker keeps its totals, and the counters cross a hand-off', () => {
  const store = new MetricsStore();
  const t = (n: number) => {
    const v = emptyTotals();
    v[1] = n;
    return v;
  };
  store.workerSeen(100, '0', t(10));
  store.workerSeen(100, '0', t(7)); // an older report never lowers what was seen
  store.workerSeen(101, '0', t(5)); // its replacement, during a phased restart
  assert.equal(store.requestTotals().get('0')![1], 15);
  store.workerExited(100, 'drained');
  assert.equal(store.requestTotals().get('0')![1], 15, 'the exit keeps the total');
  store.restartFinished({ id: 1, kind: 'phased', started: '', finished: '', outcome: 'ok', error: null });
  store.restartFinished({
    id: 2,
    kind: 'hot',
    started: '',
    finished: '',
    outcome: 'failed',
    error: 'descriptors would leak into the restarted process: 9',
  });
  const next = MetricsStore.fromHandoff(JSON.parse(JSON.stringify(store.toHandoff())));
  assert.equal(next.requestTotals().get('0')![1], 15);
  next.workerExited(101, 'drained');
  assert.equal(next.requestTotals().get('0')![1], 15);
  const restarts = next.metrics().find((m) => m.name === 'nserve_restarts_total')!;
  assert.equal(restarts.values.find((v) => v.labels.kind === 'phased' && v.labels.result === 'ok')?.value, 1);
  assert.equal(
    restarts.values.find((v) => v.labels.kind === 'hot' && v.labels.result === 'refused')?.value,
    1,
  );
  // A hand-off of an unknown shape starts from zero rather than failing.
  assert.equal(MetricsStore.fromHandoff({ restarts: 'x' }).requestTotals().size, 0);
});

test("the store: a worker's last report counts once, whichever image sees its exit; what is not adopted is gone", () => {
  const t = (n: number) => {
    const v = emptyTotals();
    v[1] = n;
    return v;
  };
  const store = new MetricsStore();
  store.workerSeen(200, '1', t(10));
  store.workerFinal(200, '1', t(12));
  assert.equal(store.answered(), 12);
  // A scrape's answer sent before the last report and read after it: not counted again.
  store.workerSeen(200, '1', t(11));
  store.workerFinal(200, '1', t(12));
  assert.equal(store.answered(), 12);
  // The exit comes after a hot restart's exec: the next image knows the report was counted.
  store.workerSeen(201, '0', t(4)); // adopted by the next image
  store.workerSeen(202, '0', t(3)); // its channel closed before the exec: not handed over
  const next = MetricsStore.fromHandoff(JSON.parse(JSON.stringify(store.toHandoff())));
  assert.equal(next.answered(), 19);
  next.adopted([200, 201]);
  assert.equal(next.answered(), 19, 'the process not adopted keeps its share');
  assert.deepEqual(next.workerExited(200, 'drained'), { final: true, totals: t(12) });
  assert.equal(next.answered(), 19);
  // An exit without a last report (a crash) keeps the last totals seen, and says so.
  assert.deepEqual(next.workerExited(201, 'signal'), { final: false, totals: t(4) });
  assert.equal(next.answered(), 19);
  assert.equal(next.requestTotals().get('1')![1], 12);
});

test('no NaN sample: the event-loop lag gauges are left out until the monitor has sampled', async () => {
  const { processMetrics, render } = await import('../../src/metrics/expose.js');
  // The first collection: prom-client's histogram was created by it and has no sample yet.
  const first = await processMetrics();
  const mean = first.find((m) => m.name === 'nodejs_eventloop_lag_mean_seconds');
  assert.deepEqual(mean?.values, []);
  assert.deepEqual(first.find((m) => m.name === 'nodejs_eventloop_lag_min_seconds')?.values, []);
  await new Promise((r) => setTimeout(r, 100));
  const later = await processMetrics();
  const sampled = later.find((m) => m.name === 'nodejs_eventloop_lag_mean_seconds')!.values;
  assert.equal(sampled.length, 1);
  assert.ok(Number.isFinite(sampled[0]!.value));
  // A NaN from anywhere (a worker's reply carries it as null) is no sample, not `Nan`.
  const reply = parseWorkerReply(
    JSON.stringify({
      metrics: [
        { name: 'g', help: 'h', type: 'gauge', values: [{ value: null, labels: {} }] },
        { name: 'k', help: 'h', type: 'gauge', values: [{ value: 2, labels: {} }] },
      ],
    }),
  );
  assert.ok(typeof reply !== 'string');
  const { text } = await render([withLabels(reply.metrics, { worker: '0' })]);
  assert.doesNotMatch(text, /nan/i);
  assert.match(text, /^k\{worker="0"\} 2$/m);
});
