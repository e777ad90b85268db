import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import type { IncomingMessage } from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { formatStats, formatStatus, table } from '../../src/cli/ctl-format.js';
import { buildConfig, type UserConfig } from '../../src/config/index.js';
import { parseControlUrl, resolveControl } from '../../src/control/api.js';
import { parseRestartKind, ROUTES, routeFor } from '../../src/control/endpoints.js';
import { presentedToken, tokenMatches } from '../../src/control/server.js';
import { SIGNAL_COMMANDS } from '../../src/control/signals.js';
import type { Stats } from '../../src/control/status.js';
import { readStateFile, removeStateFile, writeStateFile } from '../../src/os/state-file.js';
import { ROOT } from '../helpers/server.js';

const names = { urlName: '--control-url', tokenName: '--control-token' };

test('control URLs: unix (mode 0600 unless given) and numeric tcp; errors name the flag', () => {
  assert.deepEqual(parseControlUrl('unix:///run/n.sock'), { kind: 'unix', path: '/run/n.sock', mode: 0o600 });
  assert.deepEqual(parseControlUrl('unix:///run/n.sock?mode=0660'), {
    kind: 'unix',
    path: '/run/n.sock',
    mode: 0o660,
  });
  assert.deepEqual(parseControlUrl('tcp://127.0.0.1:9293'), {
    kind: 'tcp',
    family: 'tcp4',
    host: '127.0.0.1',
    port: 9293,
  });
  assert.throws(
    () => parseControlUrl('http://x'),
    /^NserveError: invalid --control-url: "http:\/\/x": expected/,
  );
  assert.throws(
    () => parseControlUrl('unix://rel.sock'),
    /invalid --control-url: "unix:\/\/rel.sock": .*absolute/,
  );
});

test('resolveControl: a tcp control URL needs a token; a token needs a URL; auto needs --state', () => {
  const base = { token: undefined, stateFile: undefined, ...names };
  assert.equal(resolveControl({ ...base, url: undefined }), undefined);
  assert.throws(
    () => resolveControl({ ...base, url: 'tcp://127.0.0.1:9293' }),
    (err: Error & { code?: string; usage?: boolean }) =>
      err.code === 'ERR_NSERVE_INVALID_CONFIG' &&
      err.usage === true &&
      /^--control-url tcp:\/\/127.0.0.1:9293 needs --control-token/.test(err.message),
  );
  assert.throws(() => resolveControl({ ...base, url: undefined, token: 'abcdef' }), /needs a control URL/);
  assert.throws(() => resolveControl({ ...base, url: 'auto' }), /auto needs --state FILE/);
  const tcp = resolveControl({ ...base, url: 'tcp://127.0.0.1:0', token: 'sekrit-1' });
  assert.equal(tcp?.token, 'sekrit-1');
  const unix = resolveControl({ ...base, url: 'unix:///tmp/x.sock' });
  assert.equal(unix?.token, undefined);
});

test('resolveControl: auto puts the socket next to the state file with a 128-bit token, kept across a re-exec', () => {
  const auto = resolveControl({
    url: 'auto',
    token: undefined,
    stateFile: '/run/app/nserve.state',
    ...names,
  });
  assert.deepEqual(auto?.address, { kind: 'unix', path: '/run/app/nserve.ctl.sock', mode: 0o600 });
  assert.match(auto?.token ?? '', /^[0-9a-f]{32}$/);
  const again = resolveControl({
    url: 'auto',
    token: undefined,
    stateFile: '/run/app/nserve.state',
    ...names,
  });
  assert.notEqual(again?.token, auto?.token);
  const kept = resolveControl({
    url: 'auto',
    token: undefined,
    stateFile: '/run/app/nserve.state',
    previousToken: 'f'.repeat(32),
    ...names,
  });
  assert.equal(kept?.token, 'f'.repeat(32));
});

test('a malformed token is refused without being echoed', () => {
  for (const bad of ['has space', '', 'tab\there', 'é-accent']) {
    assert.throws(
      () => resolveControl({ url: 'unix:///tmp/x.sock', token: bad, stateFile: undefined, ...names }),
      (err: Error) =>
        /invalid --control-token: .*value not shown/.test(err.message) &&
        (bad === '' || !err.message.includes(bad)),
    );
  }
});

test('tokens compare in constant time on hashes: any length, undefined never matches', () => {
  assert.equal(tokenMatches('abc123', 'abc123'), true);
  assert.equal(tokenMatches('abc123', 'abc124'), false);
  assert.equal(tokenMatches('abc123', 'abc1234567'), false);
  assert.equal(tokenMatches('abc123', ''), false);
  assert.equal(tokenMatches('abc123', undefined), false);
});

test('the token comes from Authorization: Bearer, else ?token=', () => {
  const req = (authorization?: string): IncomingMessage =>
    ({ headers: authorization === undefined ? {} : { authorization } }) as IncomingMessage;
  const url = (q: string): URL => new URL(`/stats${q}`, 'http://x');
  assert.equal(presentedToken(req('Bearer t0k'), url('')), 't0k');
  assert.equal(presentedToken(req('bearer t0k'), url('?token=other')), 't0k');
  assert.equal(
    presentedToken(req('Basic Zm9v'), url('?token=t0k')),
    '',
    'a non-Bearer header is a wrong token',
  );
  assert.equal(presentedToken(req(), url('?token=t0k')), 't0k');
  assert.equal(presentedToken(req(), url('')), undefined);
});

test('routes: every signal command has its POST path; paths are unique', () => {
  for (const c of SIGNAL_COMMANDS) {
    const route = routeFor(c.path);
    assert.ok(route !== undefined && route.method === 'POST' && route.action === c.action, c.path);
  }
  const paths = ROUTES.map((r) => r.path);
  assert.equal(new Set(paths).size, paths.length);
  for (const p of ['/stats', '/fds']) assert.equal(routeFor(p)?.method, 'GET');
  for (const p of [
    '/halt',
    '/reload-worker-directory',
    '/rollback',
    '/workers/increment',
    '/workers/decrement',
  ])
    assert.equal(routeFor(p)?.method, 'POST');
});

test('docs/control.md documents every route', () => {
  const doc = fs.readFileSync(path.join(ROOT, 'docs/control.md'), 'utf8');
  for (const r of ROUTES)
    assert.ok(doc.includes(`${r.method} ${r.path}`), `${r.method} ${r.path} in docs/control.md`);
});

test('state file: written atomically with mode 0600, removed only by the PID it names', (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nserve-state-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'nserve.state');
  const state = {
    version: 1 as const,
    pid: 4242,
    controlUrl: 'unix:///x.sock',
    controlToken: 't',
    startedAt: 'now',
    nserve: '0',
  };
  const old = process.umask(0);
  try {
    writeStateFile(file, state);
  } finally {
    process.umask(old);
  }
  assert.equal(fs.statSync(file).mode & 0o777, 0o600);
  assert.deepEqual(fs.readdirSync(dir), ['nserve.state'], 'no temp file left');
  assert.deepEqual(readStateFile(file), state);
  removeStateFile(file, 1);
  assert.ok(fs.existsSync(file), 'another PID does not remove it');
  removeStateFile(file, 4242);
  assert.equal(readStateFile(file), undefined);
});

const sample: Stats = {
  version: '0.1.0',
  mode: 'cluster',
  pid: 100,
  startedAt: '2026-01-01T00:00:00.000Z',
  phase: 2,
  state: 'running',
  requests: 12,
  inFlight: 1,
  lifetime: { requests: 5012, workerCrashes: 3, restarts: { hot: 4, phased: 2 }, memoryReplacements: 0 },
  directory: '/srv/releases/v2',
  longLived: 0,
  workers: [
    {
      index: 0,
      pid: 101,
      phase: 2,
      state: 'booted',
      booted: true,
      startedAt: '2026-01-01T00:00:30.000Z',
      lastCheckin: '2026-01-01T00:00:59.500Z',
      requests: 12,
      inFlight: 1,
      longLived: 0,
      eventLoopDelayP99Ms: 1.5,
      rss: 50 * 1024 * 1024,
      anon: 30 * 1024 * 1024,
      crashes: 2,
      directory: '/srv/releases/v2',
      slots: ['tcp://127.0.0.1:3000#0'],
    },
    {
      index: 1,
      pid: 102,
      phase: 2,
      state: 'booting',
      booted: false,
      startedAt: null,
      lastCheckin: '2026-01-01T00:00:59.900Z',
      requests: 0,
      inFlight: 0,
      longLived: 0,
      eventLoopDelayP99Ms: null,
      rss: null,
      crashes: 1,
      directory: '/srv/releases/v2',
      slots: [],
    },
  ],
  restarts: [
    {
      id: 1,
      kind: 'hot',
      started: '2026-01-01T00:00:10.000Z',
      finished: '2026-01-01T00:00:11.500Z',
      outcome: 'failed',
      error: 'worker 0 failed to boot: boom (at app.mjs:3:7)\n> 3 | boom()\n    | ^',
    },
  ],
  listeners: [
    { uri: 'tcp://127.0.0.1:3000', slot: 0, fd: 20, address: 'tcp://127.0.0.1:3000', inherited: false },
    { uri: 'tcp://127.0.0.1:3000', slot: 1, fd: 21, address: 'tcp://127.0.0.1:3000', inherited: false },
  ],
  fdCount: 30,
};

test('ctl tables: stats and status are readable', () => {
  const now = Date.parse('2026-01-01T00:01:00.000Z');
  const stats = formatStats(sample, now);
  assert.match(stats, /^nserve 0\.1\.0 · cluster · pid 100 · running · phase 2$/m);
  assert.match(stats, /listening {2}tcp:\/\/127\.0\.0\.1:3000 \(2 slots\)/);
  assert.match(stats, /^WORKER +PID +PHASE/m);
  assert.match(
    stats,
    /^0 +101 +2 +booted +30\.0 s +500 ms ago +12 +1 +1\.5 ms +50 MB +30 MB +2 +1 +\/srv\/releases\/v2$/m,
  );
  // Not checked in yet: unknown, not zero.
  assert.match(stats, /^1 +102 +2 +booting +— +100 ms ago +0 +0 +— +— +— +1 +0 +\/srv\/releases\/v2$/m);
  // A multi-line error stays one row.
  assert.match(
    stats,
    /^#1 +hot .* 1\.5 s +- +- +failed +worker 0 failed to boot: boom \(at app\.mjs:3:7\)$/m,
  );
  assert.doesNotMatch(stats, /> 3 \| boom/);
  assert.match(stats, /^requests {3}5012 since start · 12 by the current workers · 1 in flight$/m);
  assert.match(stats, /^lifetime {3}restarts 4 hot, 2 phased · worker crashes 3$/m);
  assert.match(stats, /^release {4}\/srv\/releases\/v2$/m);
  const status = formatStatus(sample, now);
  assert.match(status, /^running · nserve 0\.1\.0 · cluster · pid 100 · phase 2 · up 1m 0s$/m);
  assert.match(status, /^release \/srv\/releases\/v2$/m);
  assert.match(status, /^workers 2 \(1 serving\) · requests 5012 since start \(12 by the current workers\)/m);
  assert.match(
    status,
    /last restart #1 \(hot\): failed in 1\.5 s: worker 0 failed to boot: boom \(at app\.mjs:3:7\)$/m,
  );
  assert.equal(table(['A', 'BB'], [['xxx', 'y']]), 'A    BB\nxxx  y');
});

test('config: control and log options from the command line or the config file, validated once', () => {
  const cwd = os.tmpdir();
  const cfg = buildConfig({
    app: 'app.mjs',
    cli: { state: 'n.state', redirectStdout: 'out.log' },
    file: { controlUrl: 'auto', redirectStderr: 'err.log' },
    cwd,
  });
  assert.equal(cfg.stateFile, path.join(cwd, 'n.state'));
  assert.deepEqual(cfg.control?.address, { kind: 'unix', path: path.join(cwd, 'n.ctl.sock'), mode: 0o600 });
  assert.equal(cfg.redirectStdout, path.join(cwd, 'out.log'));
  assert.equal(cfg.redirectStderr, path.join(cwd, 'err.log'));
  assert.throws(
    () => buildConfig({ app: 'app.mjs', cli: {}, file: { controlUrl: 'tcp://127.0.0.1:9293' }, cwd }),
    /^NserveError: config key controlUrl tcp:\/\/127\.0\.0\.1:9293 needs --control-token/,
  );
  assert.throws(
    () => buildConfig({ app: 'app.mjs', cli: {}, file: { controlToken: 42 } as unknown as UserConfig, cwd }),
    /invalid config key controlToken: expected a string/,
  );
  assert.equal(buildConfig({ app: 'app.mjs', cli: {}, file: {}, cwd }).control, undefined);
});

test('POST /rollback?kind=: hot, phased or unset; anything else is one line', () => {
  assert.deepEqual(parseRestartKind(null), {});
  assert.deepEqual(parseRestartKind('hot'), { kind: 'hot' });
  assert.deepEqual(parseRestartKind('phased'), { kind: 'phased' });
  assert.deepEqual(parseRestartKind('cold'), { error: 'invalid kind "cold": expected hot or phased' });
});

test('ctl tables: the deploy record (releases, rollbacks, where a rollback goes, the mixed-version alarm)', () => {
  const v1 = { directory: '/srv/releases/v1', version: 'rev-1' };
  const v2 = { directory: '/srv/releases/v2', version: null };
  const deploys: Stats = {
    ...sample,
    release: v1,
    rollbackTo: v2,
    mixedVersions: {
      code: 'ERR_NSERVE_MIXED_VERSIONS',
      since: '2026-01-01T00:00:30.000Z',
      restart: 2,
      accepting: true,
      releases: [
        { ...v1, workers: 1, generation: 0 },
        { ...v2, workers: 1, generation: 1 },
      ],
      message: 'mixed versions after phased restart #2 (failed): …',
    },
    restarts: [
      {
        id: 2,
        kind: 'phased',
        started: '2026-01-01T00:00:10.000Z',
        finished: '2026-01-01T00:00:11.000Z',
        outcome: 'ok',
        error: null,
        release: v1,
        previous: v2,
        rollback: true,
      },
    ],
  };
  const now = Date.parse('2026-01-01T00:01:00.000Z');
  const stats = formatStats(deploys, now);
  assert.match(stats, /^release {4}\/srv\/releases\/v2$/m);
  assert.match(stats, /^version {4}rev-1 · rollback to \/srv\/releases\/v2$/m);
  assert.match(stats, /^WARNING {4}mixed versions after phased restart #2/m);
  assert.match(stats, /^RESTART +KIND +STARTED +TOOK +FROM +RELEASE +OUTCOME +ERROR$/m);
  assert.match(stats, /^#2 +phased rollback +\S+ +1\.0 s +\/srv\/releases\/v2 +rev-1 +ok$/m);
  const status = formatStatus(deploys, now);
  assert.match(status, /^last restart #2 \(phased rollback to rev-1\): ok in 1\.0 s$/m);
  assert.match(status, /^version rev-1 · rollback to \/srv\/releases\/v2$/m);
});
