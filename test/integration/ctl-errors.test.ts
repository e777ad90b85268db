// nserve ctl's errors (one line, exit 2), start-up refusals of bad control options, a TCP control server
// with a token across a hot restart, and the pidfile-only fallback to signals.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as path from 'node:path';
import { after, test } from 'node:test';
import { procEntry } from '../../src/os/proc.js';
import { ctl, startControlled } from '../helpers/control.js';
import { writeRelease } from '../helpers/releases.js';
import {
  CLI,
  childPids,
  isEvent,
  killAll,
  ROOT,
  runNserve,
  type ServerProcess,
  serveApp,
  startCommand,
  tmpDir,
  until,
} from '../helpers/server.js';

after(killAll);

/** The PID of a process that has exited. */
function deadPid(): number {
  const r = spawnSync(process.execPath, ['-e', '0']);
  return r.pid!;
}

test('ctl: one-line errors and exit 2 when there is nothing to talk to', { timeout: 30_000 }, async (t) => {
  const dir = tmpDir(t);
  const cases: [string[], RegExp][] = [
    [['status'], /needs -S STATE, -P PIDFILE or --control-url URL/],
    [
      ['status', '--control-url', `unix://${dir}/none.sock`],
      /^nserve: error: no server at unix:\/\/.*none\.sock \(ENOENT\)$/,
    ],
    [
      ['stats', '--control-url', 'tcp://127.0.0.1:1', '--control-token', 'x'],
      /no server at tcp:\/\/127\.0\.0\.1:1 \(ECONNREFUSED\)/,
    ],
    [['status', '--control-url', 'http://x'], /invalid --control-url: "http:\/\/x"/],
    [['status', '-P', path.join(dir, 'nope.pid')], /no pidfile at .*nope\.pid/],
    [['status', '-S', path.join(dir, 'nope.state')], /no state file at .*nope\.state/],
    [
      ['restart', '-P', path.join(dir, 'stale.pid')],
      /^nserve: error: stale pidfile .*stale\.pid: process \d+ is not running$/,
    ],
    [
      ['stop', '-S', path.join(dir, 'stale.state')],
      /^nserve: error: stale state file .*stale\.state: process \d+ is not running$/,
    ],
    [
      ['frobnicate', '-P', path.join(dir, 'stale.pid')],
      /value 'frobnicate' is invalid for argument 'command'/,
    ],
    [
      ['stats', '--wait', '-P', path.join(dir, 'stale.pid')],
      /--wait applies to restart, phased-restart, stop, halt/,
    ],
  ];
  fs.writeFileSync(path.join(dir, 'stale.pid'), `${deadPid()}\n`);
  fs.writeFileSync(
    path.join(dir, 'stale.state'),
    JSON.stringify({ version: 1, pid: deadPid(), controlUrl: `unix://${dir}/gone.sock`, controlToken: 'x' }),
  );
  for (const [args, expected] of cases) {
    const r = await ctl(args);
    assert.equal(r.code, 2, `${args.join(' ')}: exit ${r.code} ${r.stderr}`);
    const lines = r.stderr.trim().split('\n');
    assert.equal(lines.length, 1, `one line: ${r.stderr}`);
    assert.match(lines[0]!, expected, args.join(' '));
  }
});

test('start refuses bad control options with one line, before serving', { timeout: 30_000 }, async () => {
  const cases: [string[], RegExp][] = [
    [['--control-url', 'tcp://127.0.0.1:0'], /--control-url tcp:\/\/127\.0\.0\.1:0 needs --control-token/],
    [['--control-url', 'auto'], /--control-url auto needs --state FILE/],
    [['--control-token', 'abc'], /--control-token needs a control URL/],
    [['--control-url', 'unix://relative.sock'], /invalid --control-url: "unix:\/\/relative\.sock"/],
    [
      ['--control-url', 'unix:///tmp/x.sock', '--control-token', 'with space'],
      /invalid --control-token: .*value not shown/,
    ],
    [['--redirect-stdout', '/nonexistent-dir/out.log'], /cannot open --redirect-stdout: ENOENT/],
  ];
  for (const [args, expected] of cases) {
    const r = await runNserve(['start', 'examples/hello.mjs', '--bind', 'tcp://127.0.0.1:0', ...args]);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, new RegExp(`^nserve: error: ${expected.source}`), args.join(' '));
    assert.equal(r.stderr.trim().split('\n').length, 1);
    assert.ok(!r.stderr.includes('with space'), 'the token is never echoed');
  }
});

test('TCP control with a token across a hot restart; pidfile-only ctl falls back to signals', {
  timeout: 40_000,
}, async (t) => {
  const dir = tmpDir(t);
  writeRelease(dir, 'v1');
  const stateFile = path.join(dir, 'nserve.state');
  const pidfile = path.join(dir, 'nserve.pid');
  const token = 'tcp-control-token-1234';
  const { srv, url } = await startControlled(
    t,
    'app.mjs',
    { url: 'tcp://127.0.0.1:0', token, state: stateFile, pidfile },
    { directory: path.join(dir, 'releases/v1') },
  );
  assert.match(url, /^tcp:\/\/127\.0\.0\.1:\d+$/);
  assert.notEqual(url, 'tcp://127.0.0.1:0');

  const direct = await ctl(['status', '--json', '--control-url', url, '--control-token', token]);
  assert.equal(direct.code, 0, direct.stderr);
  assert.equal((JSON.parse(direct.stdout) as { pid: number }).pid, srv.pid);
  const noToken = await ctl(['status', '--control-url', url]);
  assert.equal(noToken.code, 2);
  assert.match(noToken.stderr, /refused the token \(403\): a token is needed/);

  // A second server cannot take the same control address.
  const busy = await runNserve([
    'start',
    'examples/hello.mjs',
    '--bind',
    'tcp://127.0.0.1:0',
    '--control-url',
    url,
    '--control-token',
    token,
  ]);
  assert.equal(busy.code, 2);
  assert.match(busy.stderr, /^nserve: error: control URL tcp:\/\/127\.0\.0\.1:\d+ is in use/);

  // Port 0: the new image binds a new port and rewrites the state file; ctl -S follows it.
  const r = await ctl(['restart', '--wait', '-S', stateFile]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^hot restart #1 done/);
  const state = JSON.parse(fs.readFileSync(stateFile, 'utf8')) as { pid: number; controlUrl: string };
  assert.equal(state.pid, srv.pid);
  assert.notEqual(state.controlUrl, url, 'a new port after the exec');
  const again = await ctl(['status', '-S', stateFile]);
  assert.equal(again.code, 0, again.stderr);
  assert.match(again.stdout, /phase 1/);

  // Only a pidfile: signals where one exists.
  const status = await ctl(['status', '-P', pidfile]);
  assert.equal(status.code, 0);
  assert.match(status.stdout, new RegExp(`^running: pid ${srv.pid} \\(from pidfile `));
  const halt = await ctl(['halt', '-P', pidfile]);
  assert.equal(halt.code, 2);
  assert.match(halt.stderr, /halt needs the control server/);
  const wait = await ctl(['restart', '--wait', '-P', pidfile]);
  assert.equal(wait.code, 2);
  assert.match(wait.stderr, /--wait needs the control server/);
  const mark = srv.lines.length;
  const restart = await ctl(['restart', '-P', pidfile]);
  assert.equal(restart.code, 0, restart.stderr);
  assert.match(restart.stdout, new RegExp(`^sent SIGUSR2 to pid ${srv.pid} \\(restart\\)`));
  await srv.waitForEvent('restart.hot.done', 15_000, mark);
  await until('the new image to serve its control API', () =>
    srv.lines.slice(mark).some((l) => isEvent(l, 'control.server.listening')),
  );
  const stop = await ctl(['stop', '-P', pidfile]);
  assert.equal(stop.code, 0, stop.stderr);
  assert.match(stop.stdout, /^sent SIGTERM/);
  assert.deepEqual(await srv.waitExit(), { code: 0, signal: null });
  assert.ok(!fs.existsSync(stateFile), 'state file removed at stop');
  assert.ok(!srv.lines.some((l) => JSON.stringify(l).includes(token)), 'no token in the log');
});

test('a fixed TCP control port is bound again after a hot restart (SO_REUSEADDR, TIME_WAIT left by answered requests)', {
  timeout: 30_000,
}, async (t) => {
  const dir = tmpDir(t);
  writeRelease(dir, 'v1');
  const probe = net.createServer();
  await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
  const port = (probe.address() as net.AddressInfo).port;
  await new Promise((r) => probe.close(r));
  const url = `tcp://127.0.0.1:${port}`;
  const token = 'fixed-port-token-5678';
  const { srv } = await startControlled(
    t,
    'app.mjs',
    { url, token },
    { directory: path.join(dir, 'releases/v1') },
  );
  const C = ['--control-url', url, '--control-token', token];
  // The server closes each control connection first: its side of each goes to TIME_WAIT.
  for (let i = 0; i < 3; i++) assert.equal((await ctl(['status', ...C])).code, 0);
  const r = await ctl(['restart', '--wait', ...C]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^hot restart #1 done/);
  const after = await ctl(['status', ...C]);
  assert.equal(after.code, 0, after.stderr);
  assert.match(after.stdout, /phase 1/);
  const listening = srv.lines.filter((l) => isEvent(l, 'control.server.listening')).map((l) => l.url);
  assert.deepEqual(listening, [url, url]);
});

/** One line on stderr, exit 2, matching `expected`; nothing on stdout. */
function assertRefused(
  r: { code: number | null; stdout: string; stderr: string },
  expected: RegExp,
  what: string,
) {
  assert.equal(r.code, 2, `${what}: exit ${r.code}: ${r.stdout}${r.stderr}`);
  assert.equal(r.stdout, '', `${what}: nothing on stdout`);
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 1, `${what}: one line: ${r.stderr}`);
  assert.match(lines[0]!, /^nserve: error: /, what);
  assert.match(lines[0]!, expected, what);
}

/** A live process that is not nserve (a `sleep`), killed at the end of the test. */
function unrelatedProcess(t: { after(fn: () => unknown): void }): ServerProcess {
  const proc = startCommand('sleep', ['300']);
  t.after(() => proc.kill());
  return proc;
}

/** Still running, not stopped (SIGTTIN/SIGTTOU stop a process that does not handle them). */
function assertUntouched(proc: ServerProcess, what: string) {
  assert.equal(
    proc.exitStatus,
    undefined,
    `${what}: the unrelated process was killed: ${JSON.stringify(proc.exitStatus)}`,
  );
  const state = procEntry(proc.pid)?.state;
  assert.ok(state === 'S' || state === 'R', `${what}: the unrelated process is in state ${state}`);
}

test('ctl signals or reports on no PID that is not a running nserve (a stale pidfile or state file naming a reused PID)', {
  timeout: 60_000,
}, async (t) => {
  t.after(killAll);
  const dir = tmpDir(t);
  const other = unrelatedProcess(t);
  await until('the unrelated process to run', () => procEntry(other.pid)?.state === 'S');
  const pidfile = path.join(dir, 'o.pid');
  fs.writeFileSync(pidfile, `${other.pid}\n`);
  const bare = path.join(dir, 'bare.state');
  fs.writeFileSync(bare, JSON.stringify({ version: 1, pid: other.pid }));
  const withUrl = path.join(dir, 'url.state');
  fs.writeFileSync(
    withUrl,
    JSON.stringify({ version: 1, pid: other.pid, controlUrl: `unix://${dir}/gone.sock`, controlToken: 'x' }),
  );
  const notNserve = (file: string, kind: string) =>
    new RegExp(
      `^nserve: error: ${kind} ${file.replace(/[.]/g, '\\.')} names pid ${other.pid}, which is not a running nserve \\(it runs "sleep": a stale ${kind}\\?\\): nothing was sent$`,
    );
  const commands = [
    ['stop'],
    ['restart'],
    ['phased-restart'],
    ['workers', '+1'],
    ['workers', '-1'],
    ['reload-certs'],
    ['status'],
    ['fds'],
  ];
  for (const command of commands) {
    for (const [flag, file, kind] of [
      ['-P', pidfile, 'pidfile'],
      ['-S', bare, 'state file'],
      ['-S', withUrl, 'state file'],
    ] as const) {
      const what = `ctl ${command.join(' ')} ${flag} ${path.basename(file)}`;
      assertRefused(await ctl([...command, flag, file]), notNserve(file, kind), what);
      assertUntouched(other, what);
    }
  }
  const fds = await runNserve(['fds', '-P', pidfile]);
  assert.equal(fds.code, 2, fds.stderr);
  assert.match(fds.stderr.trim(), notNserve(pidfile, 'pidfile'));

  // PID 1 (init) is alive and never an nserve: only status is asked here, so that a regression never
  // signals it.
  const one = path.join(dir, 'one.pid');
  fs.writeFileSync(one, '1\n');
  assertRefused(
    await ctl(['status', '-P', one]),
    /names pid 1, which is not a running nserve \(.*a stale pidfile\?\): nothing was sent$/,
    'status -P (pid 1)',
  );
  // PID 0 would signal the process group of ctl: run it in a group of its own, so that a regression
  // ends that ctl only (and fails here).
  const zero = path.join(dir, 'zero.pid');
  fs.writeFileSync(zero, '0\n');
  const lone = spawnSync(process.execPath, [CLI, 'ctl', 'stop', '-P', zero], {
    cwd: ROOT,
    encoding: 'utf8',
    timeout: 30_000,
    killSignal: 'SIGKILL',
    detached: true,
  } as Parameters<typeof spawnSync>[2] & { encoding: 'utf8' });
  assert.equal(lone.signal, null, `ctl stop -P (pid 0) was killed by ${lone.signal}`);
  assertRefused(
    { code: lone.status, stdout: lone.stdout, stderr: lone.stderr },
    /names pid 0: expected a process ID from 1 to 4194304$/,
    'pid 0',
  );
  assertUntouched(other, 'at the end');
});

test('over a signal: reload-certs needs the control server, and workers ±1 is refused in single mode; the server keeps serving', {
  timeout: 60_000,
}, async (t) => {
  t.after(killAll);
  const dir = tmpDir(t);
  const pidfile = path.join(dir, 'single.pid');
  const { srv, port } = await serveApp(t, 'examples/hello.mjs', { args: ['--pidfile', pidfile] });
  await until('the pidfile', () => fs.existsSync(pidfile));
  const mark = srv.lines.length;
  assertRefused(
    await ctl(['reload-certs', '-P', pidfile]),
    new RegExp(
      `^nserve: error: nserve ctl reload-certs needs the control server \\(-S with a state file naming a control URL\\): .*nothing was sent \\(if it has ssl:// binds: kill -HUP ${srv.pid}\\)$`,
    ),
    'reload-certs -P',
  );
  for (const n of ['+1', '-1'])
    assertRefused(
      await ctl(['workers', n, '-P', pidfile]),
      new RegExp(
        `^nserve: error: pid ${srv.pid} \\(pidfile .*\\) runs in single mode, and single mode has no workers: start with -w N; nothing was sent$`,
      ),
      `workers ${n} -P`,
    );
  // Still serving, and it was told nothing (a SIGHUP would have been a graceful stop).
  await new Promise((r) => setTimeout(r, 300));
  const res = await fetch(`http://127.0.0.1:${port}/`);
  assert.equal(res.status, 200);
  await res.text();
  assert.equal(srv.exitStatus, undefined, 'the server still runs');
  assert.deepEqual(
    srv.lines.slice(mark).map((l) => l.msg),
    [],
    'the server logged nothing (received no signal)',
  );

  // Cluster mode: workers +1 over a signal works (the master's title says cluster); a pidfile naming a
  // worker is refused.
  const clusterPid = path.join(dir, 'cluster.pid');
  const cluster = await serveApp(t, 'examples/hello.mjs', { workers: 1, args: ['--pidfile', clusterPid] });
  await until('the cluster pidfile', () => fs.existsSync(clusterPid));
  const [worker] = await until('one worker', () => {
    const pids = childPids(cluster.srv.pid);
    return pids.length === 1 ? pids : undefined;
  });
  const more = await ctl(['workers', '+1', '-P', clusterPid]);
  assert.equal(more.code, 0, more.stderr);
  assert.match(more.stdout, new RegExp(`^sent SIGTTIN to pid ${cluster.srv.pid} \\(workers\\)`));
  await until('two workers', () => childPids(cluster.srv.pid).length === 2);
  const workerFile = path.join(dir, 'worker.pid');
  fs.writeFileSync(workerFile, `${worker}\n`);
  assertRefused(
    await ctl(['stop', '-P', workerFile]),
    new RegExp(
      `names pid ${worker}, an nserve worker, not the server \\(its master is pid ${cluster.srv.pid}\\): nothing was sent$`,
    ),
    'stop -P (a worker)',
  );
  assert.ok(childPids(cluster.srv.pid).includes(worker!), 'the worker still runs');
  const clusterRes = await fetch(`http://127.0.0.1:${cluster.port}/`);
  assert.equal(clusterRes.status, 200);
  await clusterRes.text();
});

/** A plain node:http server answering every request with `body` (JSON) and `headers`. */
async function plainServer(
  t: { after(fn: () => unknown): void },
  body: (path: string) => unknown,
  headers: Record<string, string> = {},
): Promise<string> {
  const server = http.createServer((req, res) => {
    const text = JSON.stringify(body(new URL(req.url ?? '/', 'http://x').pathname));
    res.writeHead(200, { 'content-type': 'application/json', ...headers });
    res.end(text);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => {
    server.closeAllConnections();
    server.close();
  });
  return `tcp://127.0.0.1:${(server.address() as net.AddressInfo).port}`;
}

test('ctl pointed at something that is not an nserve control server: one line, exit 2, no false success, no TypeError', {
  timeout: 60_000,
}, async (t) => {
  t.after(killAll);
  // An ordinary app answering JSON that looks like an answer (a pid, "accepted").
  const app = await plainServer(t, () => ({ accepted: true, pid: process.pid, restart: 1, ok: true }));
  const foreign = new RegExp(
    `^nserve: error: ${app.replace(/[.]/g, '\\.')} is not an nserve control server \\(no x-nserve-control header in its answer\\)$`,
  );
  const C = ['--control-url', app, '--control-token', 'x'];
  for (const command of [
    ['stop'],
    ['restart'],
    ['restart', '--wait'],
    ['halt'],
    ['reload-certs'],
    ['workers', '+1'],
    ['status'],
    ['stats'],
    ['stats', '--json'],
    ['fds'],
  ])
    assertRefused(await ctl([...command, ...C]), foreign, `ctl ${command.join(' ')}`);
  const fds = await runNserve(['fds', ...C]);
  assert.equal(fds.code, 2, fds.stderr);
  assert.match(fds.stderr.trim(), foreign);

  // Another protocol version.
  const other = await plainServer(t, () => ({}), { 'x-nserve-control': '9' });
  assertRefused(
    await ctl(['status', '--control-url', other, '--control-token', 'x']),
    /speaks control protocol "9", this nserve ctl speaks 1/,
    'protocol 9',
  );

  // Marked, but answers of the wrong shape: named in one line, never a TypeError.
  const odd = await plainServer(
    t,
    (p) =>
      p === '/stats'
        ? { version: '0.1.0', mode: 'single', pid: 1, state: 'running' }
        : p === '/fds'
          ? { pid: 1 }
          : p === '/reload-certs'
            ? { accepted: true, pid: 1 }
            : { pid: 1 },
    { 'x-nserve-control': '1' },
  );
  const O = ['--control-url', odd, '--control-token', 'x'];
  const shape = (what: string, why: string) =>
    new RegExp(`answered ${what} in a shape this nserve ctl cannot read: ${why}$`);
  for (const [command, expected] of [
    [['status'], shape('GET /stats', 'startedAt is undefined, expected string')],
    [['stats', '--json'], shape('GET /stats', 'startedAt is undefined, expected string')],
    [['fds'], shape('GET /fds', 'the answer is object, expected array')],
    [['reload-certs'], shape('POST /reload-certs', 'id is undefined, expected number')],
    [['stop'], /answered POST \/stop without saying it accepted it/],
    [['workers', '+1'], /answered POST \/workers\/increment without saying it accepted it/],
  ] as const)
    assertRefused(await ctl([...command, ...O]), expected, `ctl ${command.join(' ')} (odd shape)`);
  const oddFds = await runNserve(['fds', ...O]);
  assert.equal(oddFds.code, 2, oddFds.stderr);
  assert.match(oddFds.stderr.trim(), /^nserve: error: .*GET \/fds in a shape this nserve ctl cannot read/);
});

test('nserve fds --pid of a process whose descriptors cannot be read: one line, no stack', {
  timeout: 30_000,
}, async () => {
  // PID 1 is init: another user's process, unless the tests run as root outside a container.
  const r = await runNserve(['fds', '--pid', '1', '--json']);
  if (r.code === 0) return;
  assert.equal(r.code, 2, r.stderr);
  assert.match(
    r.stderr,
    /^nserve: error: cannot read the descriptors of pid 1: (EACCES|EPERM) \(not your process: run as its user or root\)\n$/,
  );
});

test('a server started with a short command line (everything in its config file) is still known as nserve: its title is cut short', {
  timeout: 60_000,
}, async (t) => {
  t.after(killAll);
  const dir = tmpDir(t);
  writeRelease(dir, 'v1');
  const pidfile = path.join(dir, 's.pid');
  fs.writeFileSync(
    path.join(dir, 'nserve.config.json'),
    JSON.stringify({ app: 'releases/v1/app.mjs', workers: 1, bind: ['tcp://127.0.0.1:0'], pidfile }),
  );
  // `node n start` (n: a link to nserve's bin, as `nserve start` through PATH): Node cuts process.title
  // to the length of this command line.
  fs.symlinkSync(CLI, path.join(dir, 'n'));
  const srv = startCommand(process.execPath, ['n', 'start'], { cwd: dir });
  t.after(() => srv.kill());
  await srv.port(20_000);
  await until('the pidfile', () => fs.existsSync(pidfile));
  const title = fs.readFileSync(`/proc/${srv.pid}/cmdline`, 'utf8').split('\0')[0] ?? '';
  t.diagnostic(`title: ${JSON.stringify(title)}`);
  // Node 20 cuts process.title to the length of the command line; Node 26 does not (then there is
  // nothing cut short to check, and ctl must know the server all the same).
  t.diagnostic(`cut short: ${title.length < 'nserve master releases/v1/app.mjs gen 0'.length}`);
  const r = await ctl(['status', '-P', pidfile]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, new RegExp(`running: pid ${srv.pid}`));
});
