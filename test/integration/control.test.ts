// The control server and `nserve ctl` against a running cluster (-w 2): every endpoint, every command,
// the error statuses, restarts followed with --wait (good and broken releases), and no token in any log.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, test } from 'node:test';
import { controlRequest, ctl, rawRequest, startControlled } from '../helpers/control.js';
import { getJson } from '../helpers/load.js';
import { switchRelease, writeRelease } from '../helpers/releases.js';
import { childPids, isEvent, killAll, processAlive, tmpDir, until } from '../helpers/server.js';

after(killAll);

interface State {
  pid: number;
  controlUrl: string;
  controlToken: string;
}

test('control server and nserve ctl against a cluster', { timeout: 60_000 }, async (t) => {
  const root = tmpDir(t);
  writeRelease(root, 'v1');
  writeRelease(root, 'v2');
  writeRelease(root, 'broken', { throwAtLoad: true });
  writeRelease(root, 'slow', { bootMs: 700 });
  switchRelease(root, 'v1');
  const stateFile = path.join(root, 'nserve.state');
  const { srv, port } = await startControlled(
    t,
    'app.mjs',
    { url: 'auto', state: stateFile },
    { directory: path.join(root, 'current'), workers: 2 },
  );
  const state = JSON.parse(fs.readFileSync(stateFile, 'utf8')) as State;
  const sock = path.join(root, 'nserve.ctl.sock');
  const token = state.controlToken;
  const S = ['-S', stateFile];
  const WRONG = 'WRONG-token-0123456789';
  // tok null: no token at all
  const get = (p: string, tok: string | null = token) =>
    controlRequest(sock, 'GET', p, tok === null ? {} : { token: tok });
  const post = (p: string, tok: string | null = token) =>
    controlRequest(sock, 'POST', p, tok === null ? {} : { token: tok });
  const stats = async () =>
    (await get('/stats')).body as Record<string, unknown> & {
      workers: { pid: number; state: string; booted: boolean; lastCheckin: string }[];
      restarts: { id: number; outcome: string; error: string | null }[];
    };
  const servingWorkers = async (n: number) =>
    until(`${n} serving workers`, async () => {
      const s = await stats();
      return s.workers.length === n && s.workers.every((w) => w.booted && w.state === 'booted')
        ? s
        : undefined;
    });

  await t.test('state file and socket: mode 0600, PID, URL next to the state file, 128-bit token', () => {
    assert.equal(fs.statSync(stateFile).mode & 0o777, 0o600);
    assert.equal(fs.statSync(sock).mode & 0o777, 0o600);
    assert.ok(fs.statSync(sock).isSocket());
    assert.equal(state.pid, srv.pid);
    assert.equal(state.controlUrl, `unix://${sock}`);
    assert.match(token, /^[0-9a-f]{32}$/);
    const listening = srv.lines.filter((l) => isEvent(l, 'control.server.listening'));
    assert.deepEqual(
      listening.map((l) => l.role),
      ['master'],
      'only the master runs a control server',
    );
  });

  await t.test('GET /stats: the documented fields; control requests are not app requests', async () => {
    const before = await get('/stats');
    assert.equal(before.status, 200);
    assert.match(String(before.headers['content-type']), /^application\/json/);
    assert.equal(before.headers['x-nserve-control'], '1', 'every answer says it is a control server');
    const s = before.body;
    assert.equal(s.mode, 'cluster');
    assert.equal(s.pid, srv.pid);
    assert.equal(s.state, 'running');
    for (const k of [
      'version',
      'startedAt',
      'phase',
      'requests',
      'inFlight',
      'restarts',
      'listeners',
      'fdCount',
    ])
      assert.ok(k in s, `stats.${k}`);
    const workers = s.workers as Record<string, unknown>[];
    assert.equal(workers.length, 2);
    assert.deepEqual(
      workers.map((w) => w.pid),
      childPids(srv.pid),
    );
    for (const k of [
      'index',
      'pid',
      'phase',
      'booted',
      'lastCheckin',
      'requests',
      'inFlight',
      'eventLoopDelayP99Ms',
      'rss',
      'directory',
      'slots',
    ])
      assert.ok(k in workers[0]!, `worker.${k}`);
    assert.equal(workers[0]!.directory, fs.realpathSync(path.join(root, 'releases/v1')));
    for (let i = 0; i < 5; i++) await get('/stats');
    // Request counts reach the master with the workers' heartbeats: wait for one from each worker.
    const asked = Date.now();
    await until(
      'a heartbeat from every worker',
      async () => (await stats()).workers.every((w) => Date.parse(String(w.lastCheckin)) > asked),
      5000,
    );
    assert.equal((await stats()).requests, 0, 'no control request reached a worker');
  });

  await t.test(
    '403 without or with a wrong token (header or query); the log line names no token',
    async () => {
      const noToken = await get('/stats', null);
      assert.equal(noToken.status, 403);
      assert.equal(noToken.headers['x-nserve-control'], '1', 'a refusal is marked too');
      assert.equal((await get('/stats', WRONG)).status, 403);
      assert.equal((await controlRequest(sock, 'GET', `/stats?token=${WRONG}`)).status, 403);
      assert.equal((await controlRequest(sock, 'POST', `/restart?token=${WRONG}`)).status, 403);
      assert.equal((await get('/nowhere', null)).status, 403, 'the token is checked before the path');
      const ok = await controlRequest(sock, 'GET', `/stats?token=${token}`);
      assert.equal(ok.status, 200);
      const refusedLines = await until('the 403 log lines', () => {
        const ls = srv.lines.filter((l) => isEvent(l, 'control.auth.refused'));
        return ls.length >= 5 ? ls : undefined;
      });
      for (const l of refusedLines) {
        assert.ok(l.path === '/stats' || l.path === '/restart' || l.path === '/nowhere', JSON.stringify(l));
        assert.ok(!JSON.stringify(l).includes(WRONG), 'no wrong token in the log');
      }
      assert.ok(refusedLines.some((l) => l.reason === 'no token'));
      assert.ok(refusedLines.some((l) => l.reason === 'wrong token'));
      const r = await ctl(['status', '--control-url', `unix://${sock}`, '--control-token', WRONG]);
      assert.equal(r.code, 2);
      assert.match(r.stderr, /^nserve: error: unix:\/\/.* refused the token \(403\): wrong token\n$/);
    },
  );

  await t.test('404 unknown path, 405 wrong method (with Allow)', async () => {
    const nf = await get('/nowhere');
    assert.equal(nf.status, 404);
    assert.equal(nf.body.code, 'ERR_NSERVE_CONTROL_NOT_FOUND');
    assert.equal(nf.headers['x-nserve-control'], '1');
    const m1 = await get('/restart');
    assert.equal(m1.status, 405);
    assert.equal(m1.headers.allow, 'POST');
    const m2 = await post('/stats');
    assert.equal(m2.status, 405);
    assert.equal(m2.headers.allow, 'GET');
    assert.equal((await controlRequest(sock, 'DELETE', '/stop', { token })).status, 405);
  });

  await t.test('400 for malformed and oversized requests', async () => {
    const brew = await rawRequest(sock, 'BREW /stats HTCPCP/1.0\r\n\r\n');
    assert.match(brew, /^HTTP\/1\.1 400 /);
    assert.match(brew, /\r\nx-nserve-control: 1\r\n/i);
    const bigHeader = `GET /stats HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token}\r\nX-Big: ${'a'.repeat(10_000)}\r\n\r\n`;
    assert.match(await rawRequest(sock, bigHeader), /^HTTP\/1\.1 400 /);
    const body = 'x'.repeat(8192);
    const big = await controlRequest(sock, 'POST', '/reload-worker-directory', { token, body });
    assert.equal(big.status, 400);
    assert.match(String(big.body.error), /body too large/);
    const chunked = await controlRequest(sock, 'POST', '/reload-worker-directory', {
      token,
      headers: { 'transfer-encoding': 'chunked' },
      body,
    });
    assert.equal(chunked.status, 400);
    assert.equal((await get('/stats')).status, 200, 'still answering');
  });

  await t.test('POST /reload-worker-directory and GET /fds', async () => {
    const r = await post('/reload-worker-directory');
    assert.equal(r.status, 200);
    assert.match(String(r.body.detail), /releases\/v1/);
    const fds = await get('/fds');
    assert.ok(fds.status === 200 || fds.status === 501, `GET /fds: ${fds.status}`);
    if (fds.status === 200) {
      const procs = JSON.parse(fds.text) as { role: string; pid: number }[];
      assert.deepEqual(
        procs.map((p) => p.role),
        ['master', 'worker', 'worker'],
      );
      assert.equal(procs[0]!.pid, srv.pid);
    }
  });

  await t.test('POST /workers/increment and /workers/decrement', async () => {
    const inc = await post('/workers/increment');
    assert.equal(inc.status, 202);
    assert.equal(inc.body.detail, 'workers: 2 → 3');
    await servingWorkers(3);
    const dec = await post('/workers/decrement');
    assert.equal(dec.status, 202);
    assert.equal(dec.body.detail, 'workers: 3 → 2');
    await servingWorkers(2);
  });

  await t.test('ctl status, stats (tables and --json), fds, workers, reload-worker-directory', async () => {
    const status = await ctl(['status', ...S]);
    assert.equal(status.code, 0, status.stderr);
    assert.match(status.stdout, new RegExp(`^running · nserve \\S+ · cluster · pid ${srv.pid} · phase 0`));
    assert.match(status.stdout, /workers 2 \(2 serving\)/);
    const statsTable = await ctl(['stats', ...S]);
    assert.equal(statsTable.code, 0, statsTable.stderr);
    assert.match(statsTable.stdout, /^WORKER +PID +PHASE +STATE/m);
    assert.match(statsTable.stdout, /listening {2}tcp:\/\/127\.0\.0\.1:\d+ \(2 slots\)/);
    const statsJson = await ctl(['stats', '--json', ...S]);
    assert.equal(statsJson.code, 0);
    assert.equal((JSON.parse(statsJson.stdout) as { pid: number }).pid, srv.pid);
    const statusJson = JSON.parse((await ctl(['status', '--json', ...S])).stdout) as { workers: unknown };
    assert.deepEqual(statusJson.workers, { total: 2, serving: 2 });
    const fds = await ctl(['fds', ...S]);
    assert.equal(fds.code, 0, fds.stderr);
    assert.match(fds.stdout, new RegExp(`master pid ${srv.pid}`));
    const up = await ctl(['workers', '+1', ...S]);
    assert.equal(up.code, 0, up.stderr);
    assert.match(up.stdout, /workers: 2 → 3/);
    await servingWorkers(3);
    const down = await ctl(['workers', '-1', ...S]);
    assert.equal(down.code, 0, down.stderr);
    assert.match(down.stdout, /workers: 3 → 2/);
    await servingWorkers(2);
    const reload = await ctl(['reload-worker-directory', ...S]);
    assert.equal(reload.code, 0, reload.stderr);
    assert.match(reload.stdout, /releases\/v1/);
    const bad = await ctl(['workers', '+2', ...S]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /invalid workers argument: "\+2": expected \+1 or -1/);
  });

  await t.test('ctl restart --wait: a good release is serving when it returns', async () => {
    switchRelease(root, 'v2');
    const r = await ctl(['restart', '--wait', ...S]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^hot restart #1 done in /);
    assert.equal((await getJson(port)).body.version, 'v2');
    assert.equal(srv.pid, (await stats()).pid, 'same PID');
  });

  await t.test('409: a restart while one is in progress is refused', async () => {
    switchRelease(root, 'slow');
    const first = await post('/phased-restart');
    assert.equal(first.status, 202);
    assert.equal(first.body.restart, 2);
    const second = await post('/restart');
    assert.equal(second.status, 409);
    assert.equal(second.body.accepted, false);
    assert.match(String(second.body.error), /restart is in progress/);
    const viaCtl = await ctl(['phased-restart', ...S]);
    assert.equal(viaCtl.code, 2);
    assert.match(viaCtl.stderr, /^nserve: error: server refused: a restart is in progress/);
    await until(
      'phased restart #2 to finish',
      async () => (await stats()).restarts.find((x) => x.id === 2 && x.outcome === 'ok'),
      15_000,
    );
    assert.equal((await getJson(port)).body.version, 'slow');
  });

  await t.test(
    'ctl restart --wait: a broken release exits 1 with the error; the old code keeps serving',
    async () => {
      switchRelease(root, 'broken');
      const r = await ctl(['restart', '--wait', ...S]);
      assert.equal(r.code, 1, `${r.stdout}${r.stderr}`);
      assert.match(
        r.stderr,
        /^nserve: error: hot restart #3 failed: .*release broken is broken at load \(at app\.mjs:3:7\)\n$/,
      );
      assert.equal((await getJson(port)).body.version, 'slow', 'the old release still answers');
      const s = await stats();
      assert.equal(s.state, 'running');
      assert.equal(s.restarts.at(-1)?.outcome, 'failed');
      const json = await ctl(['phased-restart', '--wait', '--json', ...S]);
      assert.equal(json.code, 1);
      const record = JSON.parse(json.stdout) as { kind: string; outcome: string; error: string };
      assert.equal(record.kind, 'phased');
      assert.equal(record.outcome, 'failed');
      assert.match(record.error, /broken at load/);
      assert.equal((await getJson(port)).body.version, 'slow');
    },
  );

  await t.test('ctl phased-restart --wait to a good release', async () => {
    switchRelease(root, 'v1');
    const r = await ctl(['phased-restart', '--wait', ...S]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^phased restart #5 done in /);
    assert.equal((await getJson(port)).body.version, 'v1');
  });

  await t.test('no token in any log line or in /stats', async () => {
    const s = await get('/stats');
    assert.ok(!s.text.includes(token), 'not in /stats');
    const all = srv.lines.map((l) => JSON.stringify(l)).join('\n') + srv.stderr;
    assert.ok(srv.lines.length > 20);
    assert.ok(!all.includes(token), 'the token is in no log line');
    assert.ok(!all.includes(WRONG), 'a presented token is in no log line');
  });

  await t.test('ctl stop --wait: stops gracefully, removes the socket and the state file', async () => {
    const workers = childPids(srv.pid);
    const r = await ctl(['stop', '--wait', ...S]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`^stopped \\(pid ${srv.pid}\\)`));
    assert.deepEqual(await srv.waitExit(), { code: 0, signal: null });
    assert.ok(workers.every((p) => !processAlive(p)));
    assert.ok(!fs.existsSync(sock), 'socket removed');
    assert.ok(!fs.existsSync(stateFile), 'state file removed');
    const after = await ctl(['status', ...S]);
    assert.equal(after.code, 2);
    assert.match(after.stderr, /^nserve: error: no state file at /);
  });
});

test('POST /halt stops a single-mode server at once; ctl halt --wait waits for the exit', {
  timeout: 30_000,
}, async (t) => {
  const dir = tmpDir(t);
  writeRelease(dir, 'v1');
  const sock = path.join(dir, 'ctl.sock');
  const stateFile = path.join(dir, 'nserve.state');
  const token = 'single-mode-token-42';
  const { srv } = await startControlled(
    t,
    'app.mjs',
    { url: `unix://${sock}`, token, state: stateFile },
    { directory: path.join(dir, 'releases/v1') },
  );
  const stats = await controlRequest(sock, 'GET', '/stats', { token });
  assert.equal(stats.body.mode, 'single');
  const workers = await controlRequest(sock, 'POST', '/workers/increment', { token });
  assert.equal(workers.status, 409, 'cluster-only');
  const r = await ctl(['halt', '--wait', '-S', stateFile]);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(await srv.waitExit(), { code: 0, signal: null });
  assert.ok(!fs.existsSync(sock) && !fs.existsSync(stateFile));
});
