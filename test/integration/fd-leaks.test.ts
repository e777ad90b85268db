import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, test } from 'node:test';
import { listFds } from '../../src/native/index.js';
import { getJson } from '../helpers/load.js';
import { restart, signalRestart } from '../helpers/restart.js';
import {
  CLI,
  childPids,
  FIXTURES,
  isEvent,
  killAll,
  type ServerProcess,
  serveApp,
  tmpDir,
  until,
} from '../helpers/server.js';

after(killAll);

const APP = path.join(FIXTURES, 'leak/app.mjs');

/** Descriptors of `pid` that point at `file`. */
function fdsOn(pid: number, file: string): number[] {
  return fs
    .readdirSync(`/proc/${pid}/fd`)
    .filter((fd) => {
      try {
        return fs.readlinkSync(`/proc/${pid}/fd/${fd}`) === file;
      } catch {
        return false;
      }
    })
    .map(Number);
}

async function startLeaky(
  t: import('node:test').TestContext,
  extra: string[],
): Promise<{ srv: ServerProcess; file: string; port: number }> {
  const dir = tmpDir(t);
  const file = path.join(dir, 'secret.txt');
  fs.writeFileSync(file, 'data');
  const { srv, port } = await serveApp(t, APP, { args: extra, env: { LEAK_FILE: file } });
  return { srv, file, port };
}

/** A hot restart that must succeed; returns the index of the first line it logged. */
async function hotRestart(srv: ServerProcess): Promise<number> {
  return (await restart(srv, 'hot', { deadlineMs: 15_000 })).mark;
}

test('nserve fds --pid flags the descriptor that would leak', async (t) => {
  const { srv, file } = await startLeaky(t, []);
  const [leakFd] = fdsOn(srv.pid, file);
  const out = execFileSync(process.execPath, [CLI, 'fds', '--pid', String(srv.pid), '--json'], {
    encoding: 'utf8',
  });
  const procs = JSON.parse(out) as {
    role: string;
    fds: { fd: number; role: string; wouldLeak: boolean; target: string }[];
  }[];
  assert.equal(procs[0]!.role, 'single');
  const entry = procs[0]!.fds.find((f) => f.fd === leakFd)!;
  assert.equal(entry.wouldLeak, true);
  assert.equal(entry.target, file);
  const listener = procs[0]!.fds.find((f) => f.role === 'listener');
  assert.ok(listener !== undefined && !listener.wouldLeak, 'the listener is recognised and not a leak');
  assert.equal(procs[0]!.fds.filter((f) => f.wouldLeak).length, 1, 'only the app descriptor is flagged');
  const table = execFileSync(process.execPath, [CLI, 'fds', '--pid', String(srv.pid)], { encoding: 'utf8' });
  assert.match(table, new RegExp(`${leakFd} app .*${file.replace(/[.]/g, '\\.')}.*LEAK`));
});

test('leakPolicy close (default): the leak is logged and gone after the restart', async (t) => {
  const { srv, file, port } = await startLeaky(t, []);
  const [leakFd] = fdsOn(srv.pid, file);
  const mark = await hotRestart(srv);
  const line = srv.lines.slice(mark).find((l) => l.code === 'ERR_NSERVE_FD_LEAK');
  assert.ok(line, 'the leak is reported');
  assert.equal(line.event, 'fds.leak.closed');
  assert.equal(line.fd, leakFd);
  assert.equal(line.target, file);
  assert.match(String(line.msg), /closed it at the exec; close it in an onRestart hook/);
  assert.equal(fdsOn(srv.pid, file).length, 1, 'only the new image’s own descriptor is open');
  assert.equal((await getJson(port)).status, 200);
});

test('leakPolicy warn: the leak is logged and survives; the new image names it', async (t) => {
  const { srv, file } = await startLeaky(t, ['--leak-policy', 'warn']);
  const [leakFd] = fdsOn(srv.pid, file);
  const mark = await hotRestart(srv);
  assert.ok(
    srv.lines.slice(mark).some((l) => l.code === 'ERR_NSERVE_FD_LEAK' && isEvent(l, 'fds.leak.found')),
  );
  // The new image names it once it serves, after its boot line (the end of the restart).
  await srv.waitForEvent('fds.leak.inherited', 5000, mark, (l) => l.fd === leakFd);
  assert.equal(fdsOn(srv.pid, file).length, 2, 'the old descriptor survived next to the new one');
});

test('leakPolicy refuse: the restart is abandoned and serving goes on', async (t) => {
  const { srv, file, port } = await startLeaky(t, ['--leak-policy', 'refuse']);
  const { ok, line, mark } = await signalRestart(srv, 'hot', { deadlineMs: 15_000 });
  assert.equal(ok, false, 'the restart is refused');
  assert.equal(line.event, 'restart.hot.refused');
  assert.ok(!srv.lines.slice(mark).some((l) => isEvent(l, 'restart.hot.done')));
  const res = await getJson(port);
  assert.equal(res.status, 200);
  assert.equal(fdsOn(srv.pid, file).length, 1);
});

test('an onRestart hook that closes the descriptor: nothing is reported', async (t) => {
  const { srv } = await startLeaky(t, ['-C', path.join(FIXTURES, 'leak/close-in-hook.config.mjs')]);
  const mark = await hotRestart(srv);
  assert.ok(srv.lines.slice(mark).some((l) => isEvent(l, 'restart.hot.done')));
  assert.ok(!srv.lines.slice(mark).some((l) => l.code === 'ERR_NSERVE_FD_LEAK'), 'no leak reported');
});

test('20 hot restarts of a leaking app: flat under close, a growth warning under warn', async (t) => {
  const closed = await startLeaky(t, []);
  const warned = await startLeaky(t, ['--leak-policy', 'warn']);
  const closedBefore = fs.readdirSync(`/proc/${closed.srv.pid}/fd`).length;
  for (let i = 0; i < 20; i++) await Promise.all([hotRestart(closed.srv), hotRestart(warned.srv)]);
  assert.equal(
    fs.readdirSync(`/proc/${closed.srv.pid}/fd`).length,
    closedBefore,
    'close: descriptor count flat',
  );
  assert.equal(fdsOn(warned.srv.pid, warned.file).length, 21, 'warn: one more survivor per restart');
  assert.ok(
    warned.srv.lines.some((l) => l.code === 'ERR_NSERVE_FD_GROWTH'),
    'warn: the growth is reported',
  );
  assert.ok(!closed.srv.lines.some((l) => l.code === 'ERR_NSERVE_FD_GROWTH'));
});

test('20 hot restarts of a clean app: the descriptor count is identical', async (t) => {
  // Node 26 reads NODE_EXTRA_CA_CERTS on a thread of its own once node:tls loads: a descriptor open for
  // a few ms after each boot, which the count would catch at random.
  const { srv } = await serveApp(t, 'examples/hello.mjs', { env: { NODE_EXTRA_CA_CERTS: undefined } });
  const before = fs.readdirSync(`/proc/${srv.pid}/fd`).length;
  for (let i = 1; i <= 20; i++) {
    // Each restart must have happened (a refused or abandoned one leaves the count trivially flat):
    // the new image says it booted, and counts the restarts.
    const { line } = await restart(srv, 'hot', { deadlineMs: 15_000 });
    assert.equal(line.restarts, i, `restart #${i} booted a new image`);
  }
  assert.equal(fs.readdirSync(`/proc/${srv.pid}/fd`).length, before);
});

test('every descriptor nserve creates or receives is close-on-exec (master and workers, before and after a hot restart)', async (t) => {
  const dir = tmpDir(t);
  const sock = path.join(dir, 'app.sock');
  const { srv } = await serveApp(t, 'examples/hello.mjs', { workers: 2, args: ['--bind', `unix://${sock}`] });
  const check = (): void => {
    for (const pid of [srv.pid, ...childPids(srv.pid)]) {
      const open = listFds(pid).filter((f) => f.fd > 2 && !f.cloexec);
      assert.deepEqual(open, [], `pid ${pid} has descriptors without close-on-exec`);
    }
  };
  check();
  await restart(srv, 'hot');
  await until('two workers', () => childPids(srv.pid).length === 2);
  check();
});

test('nserve fds -S shows the descriptor count after each restart', async (t) => {
  const dir = tmpDir(t);
  const state = path.join(dir, 'nserve.state');
  const { srv } = await serveApp(t, 'examples/hello.mjs', {
    args: ['--control-url', 'auto', '--state', state],
  });
  for (let i = 0; i < 2; i++) await hotRestart(srv);
  await until('the state file', () => fs.existsSync(state));
  const out = execFileSync(process.execPath, [CLI, 'fds', '-S', state, '--json'], { encoding: 'utf8' });
  const procs = JSON.parse(out) as { history?: number[]; count: number }[];
  assert.equal(procs[0]!.history?.length, 2);
  assert.ok(
    procs[0]!.history!.every((n) => n === procs[0]!.history![0]),
    `flat: ${procs[0]!.history!.join(' → ')}`,
  );
  const table = execFileSync(process.execPath, [CLI, 'fds', '-S', state], { encoding: 'utf8' });
  assert.match(table, /descriptor count after each restart: \d+ → \d+/);
});
