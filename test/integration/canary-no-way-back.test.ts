// A failed canary with no previous release on disk: an app edited in place (--directory is the directory
// that serves), or a previous release removed during the canary. The old workers run the previous code
// from memory only: no bad code may serve after the verdict, nothing may claim that the previous release
// serves again, a worker that leaves is not replaced from the failed release (one worker less, said in
// the log, `ctl status`, stats and metrics), and the next good deploy restores every worker.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { type TestContext, test } from 'node:test';
import type { Stats } from '../../src/control/status.js';
import { ctl, startControlled } from '../helpers/control.js';
import { getJson, Load } from '../helpers/load.js';
import { scrape, total } from '../helpers/metrics.js';
import { makeReleases, type ReleaseOptions, writeRelease } from '../helpers/releases.js';
import { isEvent, killAll, type LogLine, type ServerProcess, tmpDir, until } from '../helpers/server.js';

const FAIL_RATE = 0.3;
/** Requests counted after the verdict (each on a new connection: spread over every slot). */
const N = 300;

async function stats(state: string): Promise<Stats> {
  const r = await ctl(['stats', '--json', '-S', state]);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as Stats;
}

async function metrics(srv: ServerProcess): Promise<string> {
  const line = await srv.waitForEvent('metrics.listener.serving', 20_000);
  const url = String(line.url);
  const s = await scrape(Number(url.slice(url.lastIndexOf(':') + 1)));
  assert.equal(s.status, 200);
  return s.text;
}

/** Answers per version (and 5xx) over `n` requests, each on a new connection. */
async function answers(port: number, n: number): Promise<{ byVersion: Map<string, number>; errors: number }> {
  const byVersion = new Map<string, number>();
  let errors = 0;
  for (let i = 0; i < n; i++) {
    const r = await getJson(port);
    if (r.status >= 500) errors++;
    const v = String(r.body.version);
    byVersion.set(v, (byVersion.get(v) ?? 0) + 1);
  }
  return { byVersion, errors };
}

/** Write the code of release `as` (fixture options) into `dir`'s app.mjs: an edit in place. */
function editInPlace(dir: string, as: string, options: ReleaseOptions = {}): void {
  const scratch = tmpDir({ after: () => {} });
  const written = writeRelease(scratch, as, options);
  fs.copyFileSync(path.join(written, 'app.mjs'), path.join(dir, 'app.mjs'));
  fs.rmSync(scratch, { recursive: true, force: true });
}

/** The line that ends a phased restart stopped by its canary. */
const stoppedByCanary = (l: LogLine): boolean => l.code === 'ERR_NSERVE_CANARY';

/** Whether a worker of the previous release was said to serve again since line `from`. */
function servesAgain(srv: ServerProcess, from: number): boolean {
  return srv.lines
    .slice(from)
    .some((l) => isEvent(l, 'canary.rollback.worker-back') || /serves again/.test(String(l.outcome ?? '')));
}

async function start(t: TestContext, directory: string, root: string) {
  const state = path.join(root, 'nserve.state');
  const served = await startControlled(
    t,
    'app.mjs',
    { url: 'auto', state },
    { workers: 2, directory, args: ['--canary', '2s', '--metrics-url', 'tcp://127.0.0.1:0'] },
  );
  return { ...served, state };
}

test('-w 2, an app edited in place fails its canary: no answer from bad code afterwards, never "serves again"; a worker that leaves is not replaced; the next good deploy restores both', {
  timeout: 180_000,
}, async (t) => {
  t.after(killAll);
  const root = makeReleases(t, { v1: {} }, 'v1');
  // No release layout: --directory is the real directory that serves, edited in place.
  const dir = fs.realpathSync(path.join(root, 'releases', 'v1'));
  const { srv, port, state } = await start(t, dir, root);
  const before = await stats(state);
  const load = new Load({ port, newConnection: 6 });
  t.after(() => load.stop());
  await load.warmedUp();

  editInPlace(dir, 'v2', { failRate: FAIL_RATE });
  const mark = srv.lines.length;
  const r = await ctl(['phased-restart', '--wait', '-S', state], 90_000);
  assert.equal(r.code, 1, `${r.stdout}${r.stderr}`);
  t.diagnostic(r.stderr.trim());
  assert.match(r.stderr, /failed: canary 5xx rate .*; the previous release .* could not be brought back/);
  const ended = await srv.waitForEvent('restart.phased.stopped', 10_000, mark, stoppedByCanary);
  const endedAt = srv.receivedAt(ended);
  t.diagnostic(String(ended.msg));
  // Honest: not on disk, both old workers run it from memory; never "serves again".
  assert.equal(
    ended.outcome,
    'the previous release could not be brought back (it is not on disk): 2 of 2 workers run it from memory',
  );
  assert.equal(ended.noWayBack, true);
  assert.ok(!servesAgain(srv, mark), srv.tail(30));
  assert.ok(
    srv.lines.slice(mark).some((l) => l.code === 'ERR_NSERVE_NO_WAY_BACK'),
    'the no-way-back line is logged with its code',
  );

  // The measured figure: answers from bad code (v2, or any 5xx) after the verdict.
  const after = await answers(port, N);
  const result = await load.stop();
  const badUnderLoad =
    result.done.filter((d) => d.version === 'v2' && d.start > endedAt).length +
    result.failures.filter((f) => f.start > endedAt).length;
  t.diagnostic(
    `answers from bad code after a failed in-place canary: ${after.byVersion.get('v2') ?? 0} of ${N} sequential + ${badUnderLoad} of ${result.done.filter((d) => d.start > endedAt).length} under load (5xx: ${after.errors})`,
  );
  assert.deepEqual([...after.byVersion], [['v1', N]]);
  assert.equal(after.errors, 0);
  assert.equal(badUnderLoad, 0);

  // The old workers (the same processes) serve, and every surface says what happened.
  let s = await stats(state);
  assert.deepEqual(
    s.workers.map((w) => w.pid).sort(),
    before.workers.map((w) => w.pid).sort(),
    'both old workers still serve',
  );
  assert.equal(s.noWayBack?.cause, 'in-place');
  assert.deepEqual(s.noWayBack?.withheld, []);
  const status = await ctl(['status', '-S', state]);
  assert.match(
    status.stdout,
    /^WARNING the previous release .* could not be brought back: it is not on disk \(.* was edited in place and now holds the failed release\); all 2 workers run it from memory/m,
  );
  let m = await metrics(srv);
  assert.equal(total(m, 'nserve_previous_release_missing'), 1);
  assert.equal(total(m, 'nserve_workers_withheld'), 0);

  // A rollback cannot go anywhere, and says why; a new worker would load the failed release.
  const rollback = await ctl(['rollback', '-S', state]);
  assert.equal(rollback.code, 2);
  assert.match(rollback.stderr, /nothing to roll back to: the previous release .* could not be brought back/);

  // A worker that leaves is not replaced from the failed release: one worker less, said everywhere.
  const leaving = s.workers[1]!;
  const mark2 = srv.lines.length;
  process.kill(leaving.pid, 'SIGKILL');
  const notReplaced = await srv.waitForEvent('worker.not-replaced', 10_000, mark2, (l) => l.worker === 1);
  assert.match(String(notReplaced.msg), /running with 1 of 2 workers/);
  s = await until(
    'one worker left',
    async () => {
      const x = await stats(state);
      return x.workers.length === 1 ? x : undefined;
    },
    10_000,
    100,
  );
  assert.deepEqual(s.noWayBack?.withheld, [1]);
  assert.match((await ctl(['status', '-S', state])).stdout, /^workers 1 \(1 serving\)/m);
  assert.match((await ctl(['stats', '-S', state])).stdout, /^WARNING +.*running with 1 of 2 workers/m);
  m = await metrics(srv);
  assert.equal(total(m, 'nserve_workers_withheld'), 1);
  assert.equal(total(m, 'nserve_workers_configured'), 2);
  const oneLess = await answers(port, 100);
  assert.deepEqual([...oneLess.byVersion], [['v1', 100]], 'still no bad code with one worker less');
  assert.ok(
    !srv.lines.slice(mark2).some((l) => isEvent(l, 'worker.spawned') && l.worker === 1),
    'nothing spawned from the failed release',
  );

  // The next good deploy (fixed in place) passes its canary and brings back both workers.
  editInPlace(dir, 'v3');
  const good = await ctl(['phased-restart', '--wait', '-S', state], 90_000);
  assert.equal(good.code, 0, `${good.stdout}${good.stderr}`);
  s = await until(
    'two workers of v3',
    async () => {
      const x = await stats(state);
      return x.workers.length === 2 && x.workers.every((w) => w.phase === 1) ? x : undefined;
    },
    15_000,
    100,
  );
  assert.equal(s.noWayBack, null);
  assert.doesNotMatch((await ctl(['status', '-S', state])).stdout, /WARNING/);
  assert.equal(total(await metrics(srv), 'nserve_previous_release_missing'), 0);
  assert.deepEqual([...(await answers(port, 20)).byVersion], [['v3', 20]]);
});

test('-w 2, the previous release removed during a failed canary: the canary is withdrawn, one worker less, no bad code; the next good deploy restores both', {
  timeout: 180_000,
}, async (t) => {
  t.after(killAll);
  const root = makeReleases(t, { v1: {}, v2: { failRate: FAIL_RATE }, v3: {} }, 'v1');
  const { srv, port, state } = await start(t, path.join(root, 'current'), root);
  const load = new Load({ port, newConnection: 6 });
  t.after(() => load.stop());
  await load.warmedUp();
  fs.rmSync(path.join(root, 'current'));
  fs.symlinkSync(path.join(root, 'releases', 'v2'), path.join(root, 'current'));
  const mark = srv.lines.length;
  const deploying = ctl(['phased-restart', '--wait', '-S', state], 90_000);
  await srv.waitForEvent('canary.started', 30_000, mark);
  // A cleanup of old releases, while the canary is judged.
  fs.rmSync(path.join(root, 'releases', 'v1'), { recursive: true });
  const r = await deploying;
  assert.equal(r.code, 1, `${r.stdout}${r.stderr}`);
  const ended = await srv.waitForEvent('restart.phased.stopped', 10_000, mark, stoppedByCanary);
  t.diagnostic(String(ended.msg));
  assert.match(
    String(ended.outcome),
    /^the previous release could not be brought back \(it is not on disk\): 1 of 2 workers run it from memory \(1 worker less\)/,
  );
  assert.ok(!servesAgain(srv, mark));
  const after = await answers(port, 100);
  const result = await load.stop();
  const endedAt = srv.receivedAt(ended);
  assert.deepEqual([...after.byVersion], [['v1', 100]]);
  assert.equal(result.done.filter((d) => d.version === 'v2' && d.start > endedAt).length, 0);
  assert.equal(result.failures.filter((f) => f.start > endedAt).length, 0, JSON.stringify(result.byKind));
  let s = await stats(state);
  assert.equal(s.workers.length, 1);
  assert.equal(s.noWayBack?.cause, 'removed');
  assert.deepEqual(s.noWayBack?.withheld, [0]);
  assert.match(
    (await ctl(['status', '-S', state])).stdout,
    /^WARNING .*was removed\); running with 1 of 2 workers/m,
  );
  // Adding a worker would load the failed release: refused.
  const more = await ctl(['workers', '+1', '-S', state]);
  assert.equal(more.code, 2, more.stdout);

  fs.rmSync(path.join(root, 'current'));
  fs.symlinkSync(path.join(root, 'releases', 'v3'), path.join(root, 'current'));
  const good = await ctl(['phased-restart', '--wait', '-S', state], 90_000);
  assert.equal(good.code, 0, `${good.stdout}${good.stderr}`);
  s = await until(
    'two workers of v3',
    async () => {
      const x = await stats(state);
      return x.workers.length === 2 && x.workers.every((w) => path.basename(w.directory) === 'v3')
        ? x
        : undefined;
    },
    15_000,
    100,
  );
  assert.equal(s.noWayBack, null);
  assert.deepEqual([...(await answers(port, 20)).byVersion], [['v3', 20]]);
});
