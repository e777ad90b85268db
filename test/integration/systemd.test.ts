import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, test } from 'node:test';
import { childProcesses } from '../../src/os/proc.js';
import { assertNoFailedRequests, getJson, Load } from '../helpers/load.js';
import { now } from '../helpers/logged-process.js';
import { NotifyReceiver } from '../helpers/notify.js';
import { writeRelease } from '../helpers/releases.js';
import { restart } from '../helpers/restart.js';
import {
  CLI,
  childPids,
  freePort,
  killAll,
  ROOT,
  type ServerProcess,
  startCommand,
  startNserve,
  tmpDir,
  until,
  zombiePids,
} from '../helpers/server.js';

after(killAll);

/** Once systemd-socket-activate listens (it says so on stderr), the first request starts the service. */
async function firstResponse(srv: ServerProcess, port: number): Promise<Awaited<ReturnType<typeof getJson>>> {
  await until('systemd-socket-activate to listen', () => /Listening on/.test(srv.stderr), 5000);
  return getJson(port);
}

function socketInode(pid: number, fd: number): string {
  return fs.readlinkSync(`/proc/${pid}/fd/${fd}`);
}

const hasSocketActivate = fs.existsSync('/usr/bin/systemd-socket-activate');

test('socket activation: the systemd socket is adopted, served, and kept across hot restarts under load', {
  skip: !hasSocketActivate && 'systemd-socket-activate is not installed',
}, async (t) => {
  const root = tmpDir(t);
  const dir = writeRelease(root, 'v1', { bootMs: 300 });
  const port = await freePort();
  const srv = startCommand('/usr/bin/systemd-socket-activate', [
    '-l',
    `127.0.0.1:${port}`,
    '--fdname=http',
    process.execPath,
    CLI,
    'start',
    path.join(dir, 'app.mjs'),
    '--bind',
    `tcp://127.0.0.1:${port}`,
  ]);
  t.after(() => srv.kill());
  // systemd-socket-activate execs the service on the first connection: connect before waiting.
  const first = await firstResponse(srv, port);
  assert.equal(first.status, 200);
  assert.equal(first.body.pid, srv.pid, 'systemd-socket-activate exec’d into nserve (same PID)');
  const adopted = await srv.waitForEvent('listen.socket.activated', 15_000, 0, (l) => l.fd === 3);
  assert.equal(adopted.bind, `tcp://127.0.0.1:${port}`);
  const inode = socketInode(srv.pid, 3);
  const load = new Load({ port, keepAlive: 3, newConnection: 2, post: 1 });
  try {
    for (let i = 1; i <= 2; i++) {
      await load.roundsSince(now(), 3);
      await restart(srv, 'hot', { deadlineMs: 15_000 });
    }
    await load.roundsSince(now(), 3);
  } finally {
    const result = await load.stop();
    assertNoFailedRequests(result);
  }
  assert.equal(socketInode(srv.pid, 3), inode, 'the same socket still serves: adopted, not re-bound');
  assert.ok(!srv.lines.some((l) => /address already in use/.test(String(l.msg))));
});

test('socket activation in cluster mode: one shared socket served by every worker', {
  skip: !hasSocketActivate && 'systemd-socket-activate is not installed',
}, async (t) => {
  const port = await freePort();
  const srv = startCommand('/usr/bin/systemd-socket-activate', [
    '-l',
    `127.0.0.1:${port}`,
    process.execPath,
    CLI,
    'start',
    'examples/hello.mjs',
    '-w',
    '2',
    '--bind',
    `tcp://127.0.0.1:${port}`,
  ]);
  t.after(() => srv.kill());
  assert.equal((await firstResponse(srv, port)).status, 200);
  await srv.waitForEvent('server.booted');
  const pids = new Set<number>();
  await until(
    'both workers to answer',
    async () => {
      pids.add(Number((await getJson(port)).body.pid));
      return pids.size === 2;
    },
    10000,
    1,
  );
  const workers = childPids(srv.pid);
  for (const w of workers) assert.ok(pids.has(w));
});

test('sd_notify: READY, RELOADING…READY for hot and phased restarts, STOPPING, STATUS and WATCHDOG', async (t) => {
  const dir = tmpDir(t);
  const receiver = new NotifyReceiver(path.join(dir, 'notify.sock'));
  t.after(() => receiver.close());
  await receiver.ready;
  const srv = startNserve(['start', 'examples/hello.mjs', '-w', '2', '--bind', 'tcp://127.0.0.1:0'], {
    env: { NOTIFY_SOCKET: receiver.path, WATCHDOG_USEC: '400000' },
  });
  t.after(() => srv.kill());
  await srv.port(20000);
  await until('READY=1', () => receiver.messages.some((m) => m.includes('READY=1')));
  await restart(srv, 'hot');
  await restart(srv, 'phased');
  const watchdogs = (): number => receiver.messages.filter((m) => m === 'WATCHDOG=1').length;
  await until('three watchdog pings', () => watchdogs() >= 3, 5000);
  srv.signal('SIGTERM');
  assert.deepEqual(await srv.waitExit(15000), { code: 0, signal: null });
  await until('STOPPING=1', () => receiver.messages.some((m) => m.startsWith('STOPPING=1')));
  const states = receiver.messages
    .flatMap((m) => m.split('\n'))
    .filter((l) => /^(READY|RELOADING|STOPPING)=1$/.test(l));
  assert.deepEqual(states, ['READY=1', 'RELOADING=1', 'READY=1', 'RELOADING=1', 'READY=1', 'STOPPING=1']);
  const reloading = receiver.messages.filter((m) => m.startsWith('RELOADING=1'));
  for (const m of reloading) assert.match(m, /\nMONOTONIC_USEC=\d+/);
  assert.ok(
    receiver.messages.some((m) => /STATUS=cluster: 2\/2 workers, phase \d+, \d+ requests/.test(m)),
    'a readable STATUS',
  );
  assert.ok(watchdogs() >= 3, 'watchdog pings at half of WATCHDOG_USEC');
});

test('as PID 1 (in a PID namespace), orphaned processes are reaped', async (t) => {
  try {
    execFileSync('unshare', ['--pid', '--fork', '--mount-proc', 'true'], { stdio: 'ignore' });
  } catch {
    t.skip('unshare --pid is not permitted here');
    return;
  }
  const dir = tmpDir(t);
  // The app starts a wrapper that exits at once, leaving its child to be re-parented to PID 1.
  fs.writeFileSync(
    path.join(dir, 'app.mjs'),
    `import { spawn } from 'node:child_process';
const orphan = () => spawn('sh', ['-c', 'sleep 0.2 & exit 0'], { stdio: 'ignore' });
for (let i = 0; i < 3; i++) orphan();
export default (req, res) => { if (req.url === '/orphan') orphan(); res.end('{}'); };
`,
  );
  const srv = startCommand('unshare', [
    '--pid',
    '--fork',
    '--mount-proc',
    process.execPath,
    CLI,
    'start',
    'app.mjs',
    '--directory',
    dir,
    '--bind',
    'tcp://127.0.0.1:0',
  ]);
  t.after(() => srv.kill());
  const port = await srv.port();
  await srv.waitForEvent('reaper.enabled');
  await getJson(port, '/orphan');
  const [init] = childPids(srv.pid);
  assert.ok(init !== undefined, 'nserve runs as the namespace’s init');
  // The orphans (`sleep 0.2`) are nserve's children until they exit; reaped, they are gone, unreaped
  // they stay as zombies and this wait runs out.
  await until('every orphan to exit and be reaped', () => childProcesses(init).length === 0, 5000);
  assert.deepEqual(zombiePids(init), [], 'no zombie left under nserve');
  srv.signal('SIGTERM');
});

test('the shipped systemd units pass systemd-analyze verify', {
  skip: !fs.existsSync('/usr/bin/systemd-analyze') && 'systemd-analyze is not installed',
}, () => {
  const units = ['nserve.socket', 'nserve.service'].map((u) => path.join(ROOT, 'docs/systemd', u));
  let stderr = '';
  try {
    execFileSync('systemd-analyze', ['verify', ...units], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    });
  } catch (err) {
    stderr = String((err as { stderr?: string }).stderr ?? err);
    assert.fail(`systemd-analyze verify failed: ${stderr}`);
  }
});
