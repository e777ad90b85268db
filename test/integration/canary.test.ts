// --canary: a phased restart's first new worker is judged by its 5xx rate against the old workers' before
// the rollout goes on. A bad release is stopped after the canary and the previous release serves again on
// every worker; a healthy one rolls out completely.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { type TestContext, test } from 'node:test';
import type { Stats } from '../../src/control/status.js';
import { ctl, startControlled } from '../helpers/control.js';
import { assertNoFailedRequests, getJson, Load, type LoadOptions } from '../helpers/load.js';
import { makeReleases, switchRelease } from '../helpers/releases.js';
import { isEvent, killAll, type LogLine, type ServerProcess, until } from '../helpers/server.js';

const FAIL_RATE = 0.3;

async function stats(state: string): Promise<Stats> {
  const r = await ctl(['stats', '--json', '-S', state]);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as Stats;
}

/** Once the replaced workers have exited: every worker of the given generation and release. */
function allOn(state: string, workers: number, phase: number, release: string): Promise<Stats> {
  return until(
    `${workers} workers of generation ${phase} serving ${release}`,
    async () => {
      const s = await stats(state);
      const on = s.workers.filter((w) => w.phase === phase && path.basename(w.directory) === release);
      return s.workers.length === workers && on.length === workers ? s : undefined;
    },
    10_000,
    100,
  );
}

/** The versions answered by `n` requests, each on a new connection (so spread over every slot). */
async function versionsAnswered(port: number, n: number): Promise<Set<string>> {
  const seen = new Set<string>();
  for (let i = 0; i < n; i++) {
    const r = await getJson(port);
    assert.equal(r.status, 200);
    seen.add(String(r.body.version));
  }
  return seen;
}

/**
 * Serve `root`'s `current` (v1) with a control server and `args`, put it under `load`, point `current` at
 * v2 and run `nserve ctl phased-restart --wait`: what the tests then judge.
 */
async function deployV2(
  t: TestContext,
  root: string,
  workers: number,
  args: string[],
  loadOptions: Omit<LoadOptions, 'port'>,
) {
  const state = path.join(root, 'nserve.state');
  const { srv, port } = await startControlled(
    t,
    'app.mjs',
    { url: 'auto', state },
    { workers, directory: path.join(root, 'current'), args },
  );
  const load = new Load({ port, ...loadOptions });
  t.after(() => load.stop());
  await load.warmedUp();
  const before = await stats(state);
  switchRelease(root, 'v2');
  const mark = srv.lines.length;
  const started = Date.now();
  const r = await ctl(['phased-restart', '--wait', '-S', state]);
  return { srv, port, state, load, before, mark, started, r };
}

function lineIndex(srv: ServerProcess, pred: (l: LogLine) => boolean, from = 0): number {
  const i = srv.lines.slice(from).findIndex(pred);
  return i < 0 ? -1 : i + from;
}

test('a release answering 30% 5xx is stopped after its canary; every worker runs the previous release again', async (t) => {
  t.after(killAll);
  const root = makeReleases(t, { v1: {}, v2: { failRate: FAIL_RATE } }, 'v1');
  const workers = 3;
  // New connections only: each request is hashed to a slot afresh, so the canary's share is its slots'.
  const { srv, port, state, load, mark, r } = await deployV2(t, root, workers, ['--canary', '3s'], {
    newConnection: 6,
  });
  assert.equal(r.code, 1, `${r.stdout}${r.stderr}`);
  // The verdict names both error rates and sample sizes.
  const verdict = /canary 5xx rate (\d+\.\d)% \((\d+)\/(\d+) requests\) vs old workers 0\.0% \(0\/(\d+)\)/;
  assert.match(r.stderr, /^nserve: error: phased restart #1 failed: canary 5xx rate /);
  const m = verdict.exec(r.stderr);
  assert.ok(m !== null, r.stderr);
  const canaryRate = Number(m[1]);
  assert.ok(canaryRate > 20 && canaryRate < 40, `canary rate ${canaryRate}%`);
  assert.ok(Number(m[3]) >= 20 && Number(m[4]) >= 20, 'both samples are past the minimum');
  // Every worker is of the previous release (generation and directory), and answers as v1.
  const s = await allOn(state, workers, 0, 'v1');
  assert.equal(s.restarts.at(-1)?.outcome, 'failed');
  assert.match(String(s.restarts.at(-1)?.error), verdict);
  // The same verdict in numbers, for tools reading `ctl stats --json`.
  const judgedRecord = s.restarts.at(-1)?.canary;
  assert.ok(judgedRecord?.canary !== undefined && judgedRecord.old !== undefined, 'numbers recorded');
  assert.equal(judgedRecord.ok, false);
  assert.equal(judgedRecord.canary.requests, Number(m[3]));
  assert.equal(judgedRecord.canary.errors, Number(m[2]));
  assert.equal(judgedRecord.old.errors, 0);
  assert.equal(judgedRecord.old.requests, Number(m[4]));
  assert.ok(
    (judgedRecord.z ?? 0) >= 2.326 && (judgedRecord.windowMs ?? 0) >= 2500,
    JSON.stringify(judgedRecord),
  );
  assert.deepEqual([...(await versionsAnswered(port, 30))], ['v1']);
  const result = await load.stop();

  const judged = srv.lines[lineIndex(srv, (l) => isEvent(l, 'canary.failed'), mark)];
  const ended =
    srv.lines[
      lineIndex(srv, (l) => isEvent(l, 'restart.phased.stopped') && l.code === 'ERR_NSERVE_CANARY', mark)
    ];
  assert.ok(judged !== undefined && ended !== undefined, 'the verdict and the outcome are logged');
  t.diagnostic(String(judged.msg));
  const judgedAt = srv.receivedAt(judged);
  const endedAt = srv.receivedAt(ended);
  const errors = result.failures;
  t.diagnostic(`requests ok=${result.ok} failed=${result.failed} ${JSON.stringify(result.byKind)}`);
  assert.ok(errors.length > 0, 'the canary did serve its share');
  assert.ok(
    errors.every((f) => f.kind === 'non2xx' && f.detail === 'status 500'),
    `only 500s from the canary, nothing refused or reset: ${JSON.stringify(result.byKind)}`,
  );
  // No request that started once the rollout was stopped met the canary.
  assert.ok(
    errors.every((f) => f.start < endedAt),
    'no 5xx after the previous release took over',
  );
  // The bound: the canary holds 1 of the 3 slots, so it receives about a third of the new connections
  // (kernel hash) from its first answer to the verdict, and fails FAIL_RATE of them. Slack ×1.5 for the
  // hash's spread, +5 for the requests in flight around the verdict (its slots move within milliseconds).
  const firstV2 = Math.min(
    ...result.done.filter((d) => d.version === 'v2').map((d) => d.start),
    ...errors.map((f) => f.start),
  );
  const inWindow =
    result.done.filter((d) => d.start >= firstV2 && d.start <= judgedAt).length +
    errors.filter((f) => f.start >= firstV2 && f.start <= judgedAt).length;
  const bound = FAIL_RATE * (inWindow / workers) * 1.5 + 5;
  t.diagnostic(
    `5xx seen by users: ${errors.length}, bound ${bound.toFixed(1)} (${inWindow} requests in the canary window)`,
  );
  assert.ok(errors.length <= bound, `${errors.length} 5xx > ${bound.toFixed(1)}`);
  // Without the canary every worker would have failed 30% of all requests: far above what users saw.
  assert.ok(errors.length < FAIL_RATE * inWindow * 0.6);
});

test('a healthy release passes its canary and rolls out to every worker, the rest two at a time', async (t) => {
  t.after(killAll);
  const root = makeReleases(t, { v1: {}, v2: {} }, 'v1');
  const { srv, port, state, load, mark, r } = await deployV2(
    t,
    root,
    3,
    ['--canary', '2s', '--phase-concurrency', '2'],
    { keepAlive: 2, newConnection: 4 },
  );
  assert.equal(r.code, 0, `${r.stdout}${r.stderr}`);
  assert.match(r.stdout, /^phased restart #1 done in /);
  const passed = srv.lines.slice(mark).find((l) => {
    // "canary 5xx rate 0.0%": the verdict's canary sample, rounded to a tenth of a percent.
    const sample = (l.canary as { canary?: { errors: number; requests: number } } | undefined)?.canary;
    return isEvent(l, 'canary.passed') && sample !== undefined && sample.errors / sample.requests < 0.0005;
  });
  assert.ok(passed !== undefined, 'the canary verdict is logged');
  t.diagnostic(String(passed.msg));
  // The canary alone first, then workers 1 and 2 together: both spawned before either is replaced.
  // The index of the line naming `event` for worker `index` (worker 0 is "worker 1/3").
  const at = (event: 'worker.spawned' | 'restart.phased.worker-replaced', index: number): number => {
    const i = lineIndex(srv, (l) => isEvent(l, event) && l.worker === index, mark);
    assert.ok(i >= 0, `no ${event} line for worker ${index}`);
    return i;
  };
  assert.ok(at('restart.phased.worker-replaced', 0) < at('worker.spawned', 1));
  assert.ok(at('worker.spawned', 2) < at('restart.phased.worker-replaced', 1));
  assert.ok(at('worker.spawned', 1) < at('restart.phased.worker-replaced', 1));
  const s = await allOn(state, 3, 1, 'v2');
  assert.equal(s.restarts.at(-1)?.outcome, 'ok');
  const record = s.restarts.at(-1)?.canary;
  assert.equal(record?.ok, true, JSON.stringify(record));
  assert.equal(record.canary?.errors, 0);
  assert.ok((record.canary?.requests ?? 0) >= 20, 'judged on at least the minimum sample');
  assert.deepEqual([...(await versionsAnswered(port, 20))], ['v2']);
  assertNoFailedRequests(await load.stop());
});

test('one worker: the old worker serves beside the canary as its baseline, and alone again after a failed canary', async (t) => {
  t.after(killAll);
  const root = makeReleases(t, { v1: {}, v2: { failRate: FAIL_RATE } }, 'v1');
  const { srv, port, state, load, before, mark, r } = await deployV2(t, root, 1, ['--canary', '2s'], {
    newConnection: 4,
  });
  assert.equal(r.code, 1, `${r.stdout}${r.stderr}`);
  t.diagnostic(r.stderr.trim());
  assert.match(r.stderr, /canary 5xx rate \d+\.\d% \(\d+\/\d+ requests\) vs old workers 0\.0% \(0\/\d+\)/);
  const s = await allOn(state, 1, 0, 'v1');
  assert.equal(s.workers[0]?.pid, before.workers[0]?.pid, 'the old worker never stopped serving');
  assert.ok(!srv.lines.slice(mark).some((l) => isEvent(l, 'canary.rollback.worker-back')));
  const result = await load.stop();
  const ended = srv.lines.find((l) => isEvent(l, 'restart.phased.stopped') && l.code === 'ERR_NSERVE_CANARY');
  assert.ok(ended !== undefined);
  assert.ok(result.failures.every((f) => f.kind === 'non2xx' && f.start < srv.receivedAt(ended)));
  assert.deepEqual([...(await versionsAnswered(port, 10))], ['v1']);
});

test('a canary with an uncaught exception fails at once, without waiting for its window', async (t) => {
  t.after(killAll);
  const root = makeReleases(t, { v1: {} }, 'v1');
  // v2 answers, then throws outside any handler: the worker asks to be replaced.
  fs.mkdirSync(path.join(root, 'releases', 'v2'));
  fs.writeFileSync(
    path.join(root, 'releases', 'v2', 'app.mjs'),
    `export default (req, res) => {
  res.setHeader('content-type', 'application/json');
  res.end(JSON.stringify({ version: 'v2', pid: process.pid }));
  setImmediate(() => { throw new Error('v2 is broken after answering'); });
};
`,
  );
  const { port, state, load, started, r } = await deployV2(t, root, 2, ['--canary', '20s'], {
    keepAlive: 2,
    newConnection: 2,
  });
  assert.equal(r.code, 1, `${r.stdout}${r.stderr}`);
  assert.match(
    r.stderr,
    /failed: the canary is leaving \(uncaught exception: v2 is broken after answering\)/,
  );
  assert.ok(Date.now() - started < 15_000, 'judged before its 20 s window');
  const s = await allOn(state, 2, 0, 'v1');
  // Failed by leaving: a verdict without numbers.
  const record = s.restarts.at(-1)?.canary;
  assert.equal(record?.ok, false);
  assert.equal(record.canary, undefined);
  assert.match(record.summary, /the canary is leaving/);
  assert.deepEqual([...(await versionsAnswered(port, 10))], ['v1']);
  // It answered before it threw, and drained: no request failed.
  assertNoFailedRequests(await load.stop());
});
