// The deploy record: the version a release names (untrusted files: garbage, huge, missing, FIFOs), the
// rules for `serving` and `previous` (two rollbacks toggle), what crosses an exec, and old shapes read.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { MixedVersionWatch, type Watched } from '../../src/cluster/releases.js';
import { Deploys, type TargetedRecord } from '../../src/deploy/record.js';
import { readReleaseRef, readReleaseVersion, VERSION_MAX_CHARS } from '../../src/deploy/release.js';
import { RestartHistory } from '../../src/restart/history.js';
import { until } from '../helpers/logged-process.js';
import { tmpDir } from '../helpers/tmp.js';

function release(t: { after(fn: () => void): void }, files: Record<string, string | Buffer>): string {
  const dir = tmpDir(t);
  for (const [name, content] of Object.entries(files)) fs.writeFileSync(path.join(dir, name), content);
  return dir;
}

test('version: REVISION first line, trimmed; else package.json version; else null', (t) => {
  assert.equal(readReleaseVersion(release(t, { REVISION: '  3f1c2ab  \nmore\n' })), '3f1c2ab');
  assert.equal(
    readReleaseVersion(release(t, { REVISION: 'v7\r\n', 'package.json': '{"version":"1.0.0"}' })),
    'v7',
  );
  assert.equal(readReleaseVersion(release(t, { 'package.json': '{"name":"x","version":"2.3.4"}' })), '2.3.4');
  // An empty REVISION falls through to package.json.
  assert.equal(readReleaseVersion(release(t, { REVISION: '\n\n', 'package.json': '{"version":"5"}' })), '5');
  assert.equal(readReleaseVersion(release(t, {})), null);
  assert.equal(readReleaseVersion('/nonexistent/release'), null);
});

test('version: garbage never crashes and never shows control characters', (t) => {
  assert.equal(readReleaseVersion(release(t, { 'package.json': '{not json' })), null);
  assert.equal(readReleaseVersion(release(t, { 'package.json': '[1,2]' })), null);
  assert.equal(readReleaseVersion(release(t, { 'package.json': '{"version":{"a":1}}' })), null);
  assert.equal(readReleaseVersion(release(t, { 'package.json': 'null' })), null);
  assert.equal(readReleaseVersion(release(t, { REVISION: 'a\u001b[31mred\u0007' })), 'a[31mred');
  assert.equal(readReleaseVersion(release(t, { REVISION: Buffer.from([0xff, 0xfe, 0x00, 0x41]) })), 'A');
  // A directory named REVISION, or a FIFO (which must not block the server), gives no version.
  const dirRev = tmpDir(t);
  fs.mkdirSync(path.join(dirRev, 'REVISION'));
  assert.equal(readReleaseVersion(dirRev), null);
  const fifo = tmpDir(t);
  execFileSync('mkfifo', [path.join(fifo, 'REVISION')]);
  assert.equal(readReleaseVersion(fifo), null);
});

test('version: huge files are read up to a cap and the version is cut', (t) => {
  const long = 'x'.repeat(10 * 1024 * 1024);
  const v = readReleaseVersion(release(t, { REVISION: long }));
  assert.equal(v !== null && Array.from(v).length, VERSION_MAX_CHARS);
  assert.ok(v?.endsWith('…'));
  // A package.json over the cap is not parsed at all.
  const big = `{"version":"1.2.3","pad":"${'y'.repeat(1024 * 1024)}"}`;
  assert.equal(readReleaseVersion(release(t, { 'package.json': big })), null);
});

test('a release rewritten in place (same directory, new REVISION) is recorded with its new version', (t) => {
  const dir = release(t, { REVISION: 'r1\n' });
  const d = new Deploys();
  d.serve(dir);
  fs.writeFileSync(path.join(dir, 'REVISION'), 'r2\n');
  const r: TargetedRecord = { id: 1, outcome: 'in-progress' };
  d.target(r, dir);
  assert.deepEqual([r.previous?.version, r.release?.version], ['r1', 'r2']);
});

test('serving and previous: a restart onto another release moves them; the same release or a failure does not', () => {
  const d = new Deploys();
  d.serve('/r/v1');
  const rec = (id: number, dir: string, outcome: string) => {
    const r: TargetedRecord = { id, outcome: 'in-progress' };
    d.target(r, dir);
    r.outcome = outcome;
    d.settle(r);
    return r;
  };
  assert.deepEqual(d.rollbackTarget(), {
    refused: 'nothing to roll back to: no restart has changed the release yet',
  });
  const dirs = (): (string | undefined)[] => [d.serving?.directory, d.previous?.directory];
  rec(1, '/r/v1', 'ok'); // a restart onto the same release
  assert.deepEqual(dirs(), ['/r/v1', undefined]);
  rec(2, '/r/v2', 'failed');
  assert.deepEqual(dirs(), ['/r/v1', undefined]);
  const deploy = rec(3, '/r/v2', 'ok');
  assert.deepEqual([deploy.release?.directory, deploy.previous?.directory], ['/r/v2', '/r/v1']);
  assert.deepEqual(dirs(), ['/r/v2', '/r/v1']);
  // A rollback (pinned) is a restart like any other: the release rolled back from becomes previous.
  d.pinned = '/r/v1';
  const back = rec(4, '/r/v1', 'ok');
  d.pinned = undefined;
  assert.equal(back.rollback, true);
  assert.deepEqual(dirs(), ['/r/v1', '/r/v2']);
  // Gone: one line naming it.
  const target = d.rollbackTarget();
  assert.match(
    'refused' in target ? target.refused : '',
    /^cannot roll back: the previous release \/r\/v2 is gone \(ENOENT\)$/,
  );
});

test('the deploy record crosses an exec; older and malformed shapes are read tolerantly', () => {
  const d = new Deploys();
  d.serving = { directory: '/r/v2', version: 'b' };
  d.previous = { directory: '/r/v1', version: null };
  const again = Deploys.fromHandoff(JSON.parse(JSON.stringify(d.toHandoff())));
  assert.deepEqual(again.toHandoff(), d.toHandoff());
  // An nserve without a deploy record hands over only the directory it served.
  assert.equal(Deploys.fromHandoff(undefined, '/r/v0').serving?.directory, '/r/v0');
  assert.equal(Deploys.fromHandoff({ serving: 7, previous: { directory: '' } }).previous, undefined);
  assert.equal(readReleaseRef({ directory: '/x', version: 42 })?.version, null);
  const history = RestartHistory.fromHandoff([
    { id: 1, kind: 'hot', started: 's', finished: null, outcome: 'ok', error: null },
    {
      id: 2,
      kind: 'phased',
      started: 's',
      finished: null,
      outcome: 'ok',
      error: null,
      release: { directory: 3 },
      previous: { directory: '/r/v1', version: 'a' },
      rollback: 'yes',
    },
  ]);
  assert.equal(history.records.length, 2);
  assert.equal(history.records[1]?.release, undefined);
  assert.deepEqual(history.records[1]?.previous, { directory: '/r/v1', version: 'a' });
  assert.equal(history.records[1]?.rollback, undefined);
});

test('mixed-version alarm: at once over accepting workers, later over every live one; cleared when one release serves', async () => {
  const history = new RestartHistory();
  const logged: { level: string; msg: string; event: unknown }[] = [];
  const log = {
    warn: (f: { event?: unknown }, msg: string) => logged.push({ level: 'warn', msg, event: f.event }),
    info: (f: { event?: unknown }, msg: string) => logged.push({ level: 'info', msg, event: f.event }),
  } as unknown as Watched['log'];
  const current = [
    { alive: true, directory: '/r/v2', generation: 1 },
    { alive: true, directory: '/r/v2', generation: 1 },
  ];
  const retiring = [{ alive: true, directory: '/r/v1', generation: 0 }];
  const watch = new MixedVersionWatch(
    {
      history,
      log,
      config: { shutdownTimeoutMs: 0, longLivedGraceMs: 0 },
      pool: { current: () => current, alive: () => [...current, ...retiring].filter((w) => w.alive) },
      lifecycle: { is: () => false },
    },
    20,
  );
  const mixed = () => history.deploys.mixed;
  history.deploys.serving = { directory: '/r/v2', version: null };
  history.deploys.previous = { directory: '/r/v1', version: null };
  const record = history.begin('hot');
  history.finish(record, 'ok');
  // A hot restart done: the accepting workers run one release; an old one still draining is expected.
  watch.restartEnded();
  assert.equal(mixed(), undefined);
  // …until the bound: then it is late, and the alarm says so.
  const late = await until('the late alarm', mixed, 5000, 5);
  assert.equal(late.restart, 1);
  // Old workers that outlived the drain: a rollback still undoes the deploy.
  assert.equal(late.accepting, false);
  assert.equal(history.deploys.view().rollbackTo?.directory, '/r/v1');
  assert.match(
    late.message,
    /^mixed versions after hot restart #1 \(ok\): 2 worker\(s\) on \/r\/v2 and 1 worker\(s\) on \/r\/v1 still alive 0 s later/,
  );
  assert.equal(logged.filter((l) => l.event === 'deploy.mixed.detected').length, 1);
  // A phased restart that stopped midway: mixed among the accepting workers, raised at once.
  retiring[0]!.alive = false;
  current[1]!.directory = '/r/v1';
  current[1]!.generation = 0;
  const phased = history.begin('phased');
  history.finish(phased, 'failed', 'worker 1 failed to boot');
  watch.restartEnded();
  assert.match(
    mixed()?.message ?? '',
    /^mixed versions after phased restart #2 \(failed\): 1 worker\(s\) on \/r\/v\d and 1 worker\(s\) on \/r\/v\d serve side by side$/,
  );
  assert.equal(mixed()?.since, late.since, 'still the same episode');
  // The accepting workers disagree: a rollback returns every worker to the release they all ran.
  assert.equal(mixed()?.accepting, true);
  assert.equal(history.deploys.view().rollbackTo?.directory, '/r/v2');
  // One release again: cleared, with a line.
  current[1]!.directory = '/r/v2';
  current[1]!.generation = 1;
  watch.restartEnded();
  watch.cancel();
  assert.equal(mixed(), undefined);
  assert.equal(logged.at(-1)?.event, 'deploy.mixed.resolved');
});

test('no way back: said honestly, withheld indexes counted, crosses an exec, cleared by the next good deploy; rollback refuses', () => {
  const history = new RestartHistory();
  const d = history.deploys;
  d.serve('/srv/app');
  const record = history.begin('phased');
  d.target(record, '/srv/app');
  const held = d.holdBack({
    restart: record.id,
    cause: 'in-place',
    running: d.serving ?? null,
    failed: record.release!,
    workers: 3,
  });
  assert.match(
    held.message,
    /^the previous release \/srv\/app could not be brought back: it is not on disk \(\/srv\/app was edited in place and now holds the failed release\); all 3 workers run it from memory, until the next good deploy/,
  );
  history.finish(record, 'failed', 'canary failed');
  assert.ok(d.noWayBack !== undefined, 'a failed restart keeps it');
  assert.match(d.withhold(2, true)?.message ?? '', /running with 2 of 3 workers .*: 2\), from memory/);
  // The hand-off keeps it (an abandoned hot restart must not forget it), malformed parts dropped.
  const again = Deploys.fromHandoff(JSON.parse(JSON.stringify(d.toHandoff())));
  assert.deepEqual(again.noWayBack, d.noWayBack);
  assert.equal(
    Deploys.fromHandoff({ noWayBack: { cause: 'lost', failed: { directory: '/x' }, workers: 2 } }).noWayBack,
    undefined,
  );
  const withheld = Deploys.fromHandoff({
    noWayBack: { cause: 'removed', failed: { directory: '/x' }, workers: 2, withheld: [1, 1, 7, -1, 'a'] },
  }).noWayBack;
  assert.deepEqual(withheld?.withheld, [1]);
  // Rollback: nowhere to go, and why.
  const target = d.rollbackTarget();
  assert.match('refused' in target ? target.refused : '', /^nothing to roll back to: the previous release/);
  // Never zero workers: the failed release serving is said as such.
  assert.match(d.withhold(2, false)?.message ?? '', /^the failed release \/srv\/app serves: no worker of/);
  // The next good deploy, in place too: cleared; a rollback then names the in-place reload.
  const good = history.begin('phased');
  d.target(good, '/srv/app');
  history.finish(good, 'ok');
  assert.equal(d.noWayBack, undefined);
  assert.equal(d.view().noWayBack, null);
  const after = d.rollbackTarget();
  assert.match(
    'refused' in after ? after.refused : '',
    /^nothing to roll back to: the last restart reloaded \/srv\/app itself \(edited in place/,
  );
});

test('mixed-version alarm: one directory under two generations (edited in place) is two codes; rollback refuses', () => {
  const history = new RestartHistory();
  const log = { warn: () => {}, info: () => {} } as unknown as Watched['log'];
  const current = [
    { alive: true, directory: '/srv/app', generation: 1 },
    { alive: true, directory: '/srv/app', generation: 0 },
  ];
  const watch = new MixedVersionWatch({
    history,
    log,
    config: { shutdownTimeoutMs: 60_000, longLivedGraceMs: 0 },
    pool: { current: () => current, alive: () => current },
    lifecycle: { is: () => false },
  });
  history.deploys.serving = { directory: '/srv/app', version: null };
  history.finish(history.begin('phased'), 'failed', 'worker 1 failed to boot');
  watch.restartEnded();
  watch.cancel();
  assert.match(
    history.deploys.mixed?.message ?? '',
    /^mixed versions after phased restart #1 \(failed\): 1 worker\(s\) on \/srv\/app as loaded by generation 1 and 1 worker\(s\) on \/srv\/app as loaded by generation 0 serve side by side$/,
  );
  const target = history.deploys.rollbackTarget();
  assert.match(
    'refused' in target ? target.refused : '',
    /^cannot roll back: the workers run two generations of \/srv\/app, edited in place/,
  );
  assert.equal(history.deploys.view().rollbackTo, null);
});
