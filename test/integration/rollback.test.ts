// `nserve ctl rollback`: back onto the previous release while `current` still names the new one, under
// load with zero failed requests, in cluster mode (hot, then phased: two rollbacks toggle) and single
// mode; the deploy record in `ctl stats` (versions from REVISION files, verdicts); a previous release
// that is gone, or none at all, refused in one line with the old code serving; the mixed-version alarm
// after a phased restart that stopped midway, cleared by a rollback.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, test } from 'node:test';
import { controlRequest, ctl } from '../helpers/control.js';
import { getJson, Load, stopWithoutFailures } from '../helpers/load.js';
import { makeReleases, switchRelease, versions, writeRelease } from '../helpers/releases.js';
import { signalRestart } from '../helpers/restart.js';
import { type Cleanup, isEvent, killAll, serveCurrent } from '../helpers/server.js';

after(killAll);

interface Ref {
  directory: string;
  version: string | null;
}
interface Record {
  id: number;
  kind: string;
  outcome: string;
  error: string | null;
  release?: Ref;
  previous?: Ref;
  rollback?: boolean;
}
interface DeployStats {
  restarts: Record[];
  release?: Ref | null;
  rollbackTo?: Ref | null;
  mixedVersions?: { message: string; releases: (Ref & { workers: number })[] } | null;
}

/** Releases v1 and v2 (each with a REVISION file), `current` → v1, a control server; serving. */
async function deployed(t: Cleanup, workers: number | undefined, args: string[] = []) {
  const versionCount = 2;
  const root = makeReleases(t, versions(versionCount), 'v1');
  for (let i = 1; i <= versionCount; i++)
    fs.writeFileSync(path.join(root, 'releases', `v${i}`, 'REVISION'), `rev-v${i}\nsecond line\n`);
  const state = path.join(root, 'nserve.state');
  const served = await serveCurrent(t, root, {
    ...(workers === undefined ? {} : { workers }),
    args: ['--control-url', 'auto', '--state', state, ...args],
  });
  return { root, S: ['-S', state], ...served };
}

async function stats(S: string[]): Promise<DeployStats> {
  const r = await ctl(['stats', '--json', ...S]);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as DeployStats;
}

async function waited(args: string[]): Promise<string> {
  const r = await ctl([...args, '--wait', '--timeout', '60'], 90_000);
  assert.equal(r.code, 0, `nserve ctl ${args.join(' ')} --wait: ${r.stderr}${r.stdout}`);
  return r.stdout;
}

const real = (root: string, version: string): string => fs.realpathSync(path.join(root, 'releases', version));

test('-w 2: rollback brings v1 back under load though current names v2; twice toggles; the record shows it', {
  timeout: 180_000,
}, async (t) => {
  // With a canary configured: a rollback is not judged again, so the phased one has no canary phase.
  const { root, S, port, srv } = await deployed(t, 2, ['--canary', '30s']);
  switchRelease(root, 'v2');
  await waited(['restart', ...S]);
  assert.equal((await getJson(port)).body.version, 'v2');

  const load = new Load({ port, keepAlive: 2, newConnection: 2 });
  await load.warmedUp();
  const said = await waited(['rollback', ...S]);
  assert.match(said, /^rollback #2 \(hot restart\) done in .* · serving rev-v1 \(/m);
  assert.equal((await getJson(port)).body.version, 'v1');
  assert.equal(fs.realpathSync(path.join(root, 'current')), real(root, 'v2'), 'current still names v2');
  await load.roundsSince(performance.now(), 2);

  let s = await stats(S);
  const [deploy, rollback] = s.restarts;
  assert.deepEqual(
    [deploy?.kind, deploy?.outcome, deploy?.release?.version, deploy?.previous?.version, deploy?.rollback],
    ['hot', 'ok', 'rev-v2', 'rev-v1', undefined],
  );
  assert.deepEqual(
    [rollback?.outcome, rollback?.release?.version, rollback?.previous?.version, rollback?.rollback],
    ['ok', 'rev-v1', 'rev-v2', true],
  );
  assert.equal(rollback?.release?.directory, real(root, 'v1'));
  assert.equal(s.release?.version, 'rev-v1');
  assert.equal(s.rollbackTo?.version, 'rev-v2', 'the release rolled back from is the next rollback target');
  const table = await ctl(['stats', ...S]);
  assert.match(table.stdout, /^version {4}rev-v1 · rollback to rev-v2 \(/m);
  assert.match(table.stdout, /^#2 +hot rollback .* rev-v2 +rev-v1 +ok/m);

  // A second rollback, phased this time, toggles back to v2 (the deploy record crossed the exec).
  const again = await waited(['rollback', '--phased', ...S]);
  assert.match(again, /^rollback #3 \(phased restart\) done in .* · serving rev-v2 /m);
  assert.equal((await getJson(port)).body.version, 'v2');
  assert.ok(
    srv.lines.every((l) => !isEvent(l, 'canary.started')),
    'a rollback has no canary phase',
  );
  await load.roundsSince(performance.now(), 2);
  await stopWithoutFailures(load, t);

  // v1 deleted: a clear refusal, v2 keeps serving.
  fs.rmSync(path.join(root, 'releases', 'v1'), { recursive: true });
  const gone = await ctl(['rollback', ...S]);
  assert.equal(gone.code, 2);
  assert.match(
    gone.stderr,
    /^nserve: error: server refused: cannot roll back: the previous release rev-v1 \(.*\) is gone \(ENOENT\)\n$/,
  );
  assert.equal((await getJson(port)).body.version, 'v2');
  s = await stats(S);
  assert.equal(s.restarts.length, 3, 'a refused rollback starts no restart');
});

for (const bootCheck of [false, true])
  test(`single mode${bootCheck ? ' --boot-check' : ''}: rollback re-execs onto the pinned v1 under load; with nothing to roll back to, one line`, {
    timeout: 120_000,
  }, async (t) => {
    const { root, S, port } = await deployed(t, undefined, bootCheck ? ['--boot-check'] : []);
    const nothing = await ctl(['rollback', ...S]);
    assert.equal(nothing.code, 2);
    assert.equal(
      nothing.stderr,
      'nserve: error: server refused: nothing to roll back to: no restart has changed the release yet\n',
    );
    // Same authentication as every action; a kind other than hot or phased is a bad request.
    const socket = path.join(root, 'nserve.ctl.sock');
    const { controlToken } = JSON.parse(fs.readFileSync(path.join(root, 'nserve.state'), 'utf8')) as {
      controlToken: string;
    };
    assert.equal((await controlRequest(socket, 'POST', '/rollback')).status, 403);
    const cold = await controlRequest(socket, 'POST', '/rollback?kind=cold', { token: controlToken });
    assert.deepEqual([cold.status, cold.body.error], [400, 'invalid kind "cold": expected hot or phased']);
    const none = await controlRequest(socket, 'POST', '/rollback?kind=hot', { token: controlToken });
    assert.equal(none.status, 409);
    const flags = await ctl(['rollback', '--hot', '--phased', ...S]);
    assert.equal(flags.code, 2);
    assert.match(flags.stderr, /^nserve: error: rollback takes --hot or --phased, not both\n$/);

    switchRelease(root, 'v2');
    await waited(['restart', ...S]);
    // v2 on disk now fails to load: a boot check (or anything) that read `current` would fail the rollback.
    fs.writeFileSync(path.join(root, 'releases', 'v2', 'app.mjs'), "throw new Error('v2 is broken');\n");
    const load = new Load({ port, keepAlive: 2, newConnection: 2 });
    await load.warmedUp();
    const said = await waited(['rollback', ...S]);
    assert.match(said, /^rollback #2 \(hot restart\) done in .* · serving rev-v1 \(/m);
    assert.equal((await getJson(port)).body.version, 'v1');
    assert.equal(fs.realpathSync(path.join(root, 'current')), real(root, 'v2'));
    await load.roundsSince(performance.now(), 2);
    await stopWithoutFailures(load, t);

    const s = await stats(S);
    assert.deepEqual(
      s.restarts.map((r) => [r.outcome, r.release?.version, r.previous?.version, r.rollback === true]),
      [
        ['ok', 'rev-v2', 'rev-v1', false],
        ['ok', 'rev-v1', 'rev-v2', true],
      ],
    );
    assert.equal(s.release?.directory, real(root, 'v1'));
    assert.equal(s.rollbackTo?.version, 'rev-v2');
  });

test('-w 2: a phased restart stopped midway raises the mixed-version alarm; a rollback clears it', {
  timeout: 120_000,
}, async (t) => {
  const { root, S, srv, port } = await deployed(t, 2);
  // v3 boots in worker 0 and fails in worker 1: the rollout stops with one worker on each release.
  const v3 = writeRelease(root, 'v3');
  fs.writeFileSync(path.join(v3, 'REVISION'), 'rev-v3');
  fs.writeFileSync(
    path.join(v3, 'app.mjs'),
    `if (process.env.NSERVE_WORKER === '1') throw new Error('v3 fails in worker 1');\n${fs.readFileSync(path.join(v3, 'app.mjs'), 'utf8')}`,
  );
  const outcome = await signalRestart(srv, 'phased', {
    release: { root, version: 'v3' },
    deadlineMs: 30_000,
  });
  assert.equal(outcome.ok, false);
  const alarm = await srv.waitForLog(
    'the mixed-version alarm',
    (l) => l.code === 'ERR_NSERVE_MIXED_VERSIONS',
    10_000,
    outcome.mark,
  );
  assert.match(
    String(alarm.msg),
    /^mixed versions after phased restart #1 \(failed\): 1 worker\(s\) on rev-v\d .* and 1 worker\(s\) on rev-v\d .* serve side by side$/,
  );
  let s = await stats(S);
  assert.deepEqual(s.mixedVersions?.releases.map((r) => r.version).sort(), ['rev-v1', 'rev-v3']);
  assert.equal(s.rollbackTo?.version, 'rev-v1', 'while mixed, rollback goes to the release every worker ran');
  assert.match((await ctl(['status', ...S])).stdout, /^WARNING mixed versions after phased restart #1/m);

  const mark = srv.lines.length;
  await waited(['rollback', ...S]);
  await srv.waitForEvent('deploy.mixed.resolved', 10_000, mark);
  s = await stats(S);
  assert.equal(s.mixedVersions, null);
  for (let i = 0; i < 4; i++) assert.equal((await getJson(port)).body.version, 'v1');
});
