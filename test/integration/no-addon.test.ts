// Without the native addon (macOS, Windows, or forced with NSERVE_NO_ADDON=1 as here): single mode
// serves with Node's own listener until it is stopped, however it was started (a terminal, detached
// with output to a file, no stdin at all); it binds exactly where it was told, writes and removes its
// pidfile, and what needs the addon says so in one line.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, test } from 'node:test';
import { getJson } from '../helpers/load.js';
import {
  CLI,
  type Cleanup,
  freePort,
  killAll,
  processAlive,
  runNserve,
  startNserve,
  tmpDir,
  until,
} from '../helpers/server.js';

after(killAll);

const env = { NSERVE_NO_ADDON: '1' };

/** The listening TCP sockets in /proc/net/tcp{,6}, as `host:port` (IPv4 only: what these tests bind). */
function tcpListeners(): string[] {
  const lines = fs.readFileSync('/proc/net/tcp', 'utf8').trim().split('\n').slice(1);
  return lines.flatMap((line) => {
    const [, local, , state] = line.trim().split(/\s+/);
    if (state !== '0A' || local === undefined) return []; // 0A: TCP_LISTEN
    const [hex, port] = local.split(':') as [string, string];
    const ip = [3, 2, 1, 0].map((i) => Number.parseInt(hex.slice(i * 2, i * 2 + 2), 16)).join('.');
    return [`${ip}:${Number.parseInt(port, 16)}`];
  });
}

type Way = 'terminal' | 'detached' | 'no stdin';

/**
 * Start portable mode one of the ways users do, with no pipe of ours to it: `script` gives it a
 * terminal; `detached` has stdin from /dev/null and output to a file; `no stdin` closes descriptor 0
 * (as a supervisor may). Returns the process we spawned (the server, or `script` above it).
 */
function startDetached(t: Cleanup, way: Way, args: string[], logFile: string): ChildProcess {
  const node = [process.execPath, CLI, 'start', ...args].map((a) => `'${a}'`).join(' ');
  const out = fs.openSync(logFile, 'a');
  const child =
    way === 'terminal'
      ? spawn('script', ['-qfec', node, '/dev/null'], {
          detached: true,
          stdio: ['pipe', out, out],
          env: { ...process.env, ...env },
        })
      : spawn('sh', ['-c', `exec ${way === 'no stdin' ? '<&-' : '</dev/null'} ${node}`], {
          detached: true,
          stdio: ['ignore', out, out],
          env: { ...process.env, ...env },
        });
  fs.closeSync(out);
  t.after(() => {
    try {
      if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  });
  return child;
}

for (const way of ['terminal', 'detached', 'no stdin'] as const) {
  test(`without the addon, started ${way === 'terminal' ? 'from a terminal' : way}: serves on exactly its bind until SIGTERM, pidfile written and removed`, {
    timeout: 30_000,
  }, async (t) => {
    const dir = tmpDir(t);
    const port = await freePort();
    const pidfile = path.join(dir, 'nserve.pid');
    const logFile = path.join(dir, 'out.log');
    const child = startDetached(
      t,
      way,
      ['examples/hello.mjs', '--bind', `tcp://127.0.0.1:${port}`, '--pidfile', pidfile],
      logFile,
    );
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    const pid = await until(
      'the pidfile',
      () => fs.existsSync(pidfile) && Number(fs.readFileSync(pidfile, 'utf8')),
      15_000,
    );
    if (way !== 'terminal') assert.equal(pid, child.pid, 'the pidfile names the server');
    // Well past the moment it used to exit (a fraction of a second after "nserve booted").
    await new Promise((r) => setTimeout(r, 1500));
    assert.ok(
      processAlive(pid),
      `still running 1.5 s after boot; its output:\n${fs.readFileSync(logFile, 'utf8')}`,
    );
    const listening = tcpListeners().filter((a) => a.endsWith(`:${port}`));
    assert.deepEqual(listening, [`127.0.0.1:${port}`], 'listens on the bind host only, not 0.0.0.0');
    const reply = await getJson(port);
    assert.equal(reply.status, 200);
    assert.equal(reply.body.pid, pid);
    const log = fs.readFileSync(logFile, 'utf8');
    assert.match(log, new RegExp(`"binds":\\["tcp://127\\.0\\.0\\.1:${port}"\\]`), 'reports what it bound');
    process.kill(pid, 'SIGTERM');
    assert.equal(await exited, 0, 'SIGTERM drains and exits 0');
    assert.equal(processAlive(pid), false);
    assert.equal(fs.existsSync(pidfile), false, 'the pidfile is removed at the stop');
    assert.match(fs.readFileSync(logFile, 'utf8'), /\bserver\.stopped\b/);
  });
}

test('without the addon, a unix bind gets its path and mode, and the socket file goes at the stop', {
  timeout: 30_000,
}, async (t) => {
  const dir = tmpDir(t);
  const sock = path.join(dir, 'app.sock');
  const srv = startNserve(['start', 'examples/hello.mjs', '--bind', `unix://${sock}?mode=0600`], { env });
  t.after(() => srv.kill());
  const booted = await srv.waitForEvent('server.booted');
  assert.deepEqual(booted.binds, [`unix://${sock}`]);
  const st = fs.statSync(sock);
  assert.ok(st.isSocket());
  assert.equal(st.mode & 0o777, 0o600);
  assert.equal((await getJson(0, '/', { socketPath: sock })).status, 200);
  srv.signal('SIGTERM');
  assert.deepEqual(await srv.waitExit(10000), { code: 0, signal: null });
  assert.equal(fs.existsSync(sock), false);
});

test('without the addon, --shutdown-delay serves on (health 503), the ready probe and onBooted run', {
  timeout: 30_000,
}, async (t) => {
  const dir = tmpDir(t);
  const marker = path.join(dir, 'booted');
  const config = path.join(dir, 'nserve.config.mjs');
  fs.writeFileSync(
    config,
    `import * as fs from 'node:fs';\nexport default { onBooted: () => fs.writeFileSync(${JSON.stringify(marker)}, 'yes') };\n`,
  );
  const srv = startNserve(
    [
      'start',
      'examples/hello.mjs',
      '-C',
      config,
      '--bind',
      'tcp://127.0.0.1:0',
      '--shutdown-delay',
      '1.5',
      '--health-path',
      '/healthz',
      '--ready-probe',
      '/',
    ],
    { env },
  );
  t.after(() => srv.kill());
  const port = await srv.port();
  await until('onBooted ran', () => fs.existsSync(marker), 10_000);
  assert.equal((await getJson(port, '/healthz')).status, 200);
  const mark = srv.lines.length;
  srv.signal('SIGTERM');
  await srv.waitForEvent('stop.delay.started', 5000, mark);
  assert.equal((await getJson(port, '/healthz')).status, 503, 'unready during the delay');
  assert.equal((await getJson(port, '/')).status, 200, 'still serving during the delay');
  assert.deepEqual(await srv.waitExit(10000), { code: 0, signal: null });
});

test('without the addon, a hot restart is refused in one line and it serves on', {
  timeout: 30_000,
}, async (t) => {
  const srv = startNserve(['start', 'examples/hello.mjs', '--bind', 'tcp://127.0.0.1:0'], { env });
  t.after(() => srv.kill());
  const port = await srv.port();
  const booted = await srv.waitForEvent('server.booted');
  assert.equal(booted.addon, false);
  const mark = srv.lines.length;
  srv.signal('SIGUSR2');
  const refused = await srv.waitForEvent('signal.ignored', 5000, mark, (l) => l.signal === 'SIGUSR2');
  assert.match(
    String(refused.msg),
    /hot restart needs nserve's native addon, which is unavailable: NSERVE_NO_ADDON=1/,
  );
  assert.equal((await getJson(port)).status, 200, 'still serving');
  srv.signal('SIGTERM');
  assert.deepEqual(await srv.waitExit(10000), { code: 0, signal: null });
});

for (const [what, args, pattern] of [
  ['cluster mode', ['-w', '2'], /cluster mode \(-w 2\) needs nserve's native addon/],
  [
    'the control server',
    ['--control-url', 'tcp://127.0.0.1:0', '--control-token', 'secret-token-0123456789abcdef'],
    /the control server \(--control-url tcp:\/\/127\.0\.0\.1:0\) needs nserve's native addon/,
  ],
  [
    'the metrics listener',
    ['--metrics-url', 'tcp://127.0.0.1:0'],
    /the metrics listener \(--metrics-url\) needs nserve's native addon/,
  ],
] as const) {
  test(`without the addon, ${what} is refused at start: one line, exit 2, nothing left listening`, {
    timeout: 30_000,
  }, async () => {
    const port = await freePort();
    const r = await runNserve(['start', 'examples/hello.mjs', '--bind', `tcp://127.0.0.1:${port}`, ...args], {
      env,
    });
    assert.equal(r.code, 2);
    assert.match(
      r.stderr,
      new RegExp(`^nserve: error: .*${pattern.source}[^\\n]*unavailable: NSERVE_NO_ADDON=1[^\\n]*\\n$`),
    );
    assert.deepEqual(
      tcpListeners().filter((a) => a.endsWith(`:${port}`)),
      [],
    );
  });
}
