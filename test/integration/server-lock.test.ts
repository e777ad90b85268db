// One server per --pidfile and --state: the lock beside each file (control/lock.ts). Two servers started
// at the same instant on the same files (different binds): exactly one runs, the other is refused in one
// line before it binds anything. The lock survives hot restarts (single and cluster mode), workers never
// hold it, ctl keeps working against the server that runs, and once it stops a new server can start.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { after, test } from 'node:test';
import { ctl } from '../helpers/control.js';
import { restart } from '../helpers/restart.js';
import {
  childPids,
  freePort,
  isEvent,
  killAll,
  processAlive,
  runNserve,
  type ServerProcess,
  startApp,
  tmpDir,
  until,
} from '../helpers/server.js';

after(killAll);

const APP = 'examples/hello.mjs';
const TRIALS = 6;
const REFUSED = /^nserve: error: --pidfile (\S+) is held by a running server \(PID (\d+)\)/;

const booted = (srv: ServerProcess): boolean => srv.lines.some((l) => isEvent(l, 'server.booted'));

/** Whether anything accepts connections on 127.0.0.1:port. */
function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/** The one line a refused start writes: the file, and the PID of the server that holds it. */
function refusal(srv: ServerProcess, pidfile: string): number {
  assert.deepEqual(srv.exitStatus, { code: 2, signal: null }, srv.tail());
  assert.equal(srv.stderr.trim().split('\n').length, 1, `one line: ${srv.stderr}`);
  const m = REFUSED.exec(srv.stderr.trim());
  assert.ok(m, `the refusal names the file and the holder: ${srv.stderr}`);
  assert.equal(m[1], pidfile);
  return Number(m[2]);
}

function args(pidfile: string, state: string, more: string[] = []): string[] {
  return ['--pidfile', pidfile, '--state', state, ...more];
}

test(`two servers started together on one --pidfile and --state: exactly one runs (${TRIALS} trials)`, {
  timeout: 150_000,
}, async (t) => {
  for (let trial = 0; trial < TRIALS; trial++) {
    const dir = tmpDir(t);
    const pidfile = path.join(dir, 'app.pid');
    const state = path.join(dir, 'app.state');
    const ports = [await freePort(), await freePort()];
    // Started in the same tick: both read no pidfile and no state file, so only a lock can tell them apart.
    const servers = ports.map((port) =>
      startApp(t, APP, { bind: `tcp://127.0.0.1:${port}`, args: args(pidfile, state) }),
    );
    await until(
      `trial ${trial}: each server booted or exited`,
      () => servers.every((s) => booted(s) || s.exitStatus !== undefined),
      30_000,
    );
    const running = servers.filter((s) => s.exitStatus === undefined);
    assert.equal(
      running.length,
      1,
      `trial ${trial}: exactly one server runs\n${servers.map((s) => s.tail(5)).join('\n---\n')}`,
    );
    const winner = running[0]!;
    const loser = servers.find((s) => s !== winner)!;
    assert.equal(refusal(loser, pidfile), winner.pid, `trial ${trial}: the refusal names the winner`);
    assert.ok(!booted(loser), 'the loser never booted');
    // Nothing of the loser is left: its process is gone and its port is not listening.
    assert.ok(!processAlive(loser.pid));
    assert.equal(await accepts(ports[servers.indexOf(loser)]!), false, 'the loser bound nothing');
    assert.equal(await accepts(ports[servers.indexOf(winner)]!), true, 'the winner serves');
    await until('the winner to write its pidfile', () => fs.existsSync(pidfile), 10_000);
    assert.equal(Number(fs.readFileSync(pidfile, 'utf8')), winner.pid);
    const status = await ctl(['status', '-P', pidfile]);
    assert.equal(status.code, 0, status.stderr);
    assert.match(status.stdout, new RegExp(`^running: pid ${winner.pid} `));
    await winner.kill();
  }
});

for (const mode of ['single', 'cluster'] as const) {
  test(`${mode} mode: a hot restart keeps the lock; ctl stops the server; then a new server starts`, {
    timeout: 90_000,
  }, async (t) => {
    const dir = tmpDir(t);
    const pidfile = path.join(dir, 'app.pid');
    const state = path.join(dir, 'app.state');
    const extra = mode === 'cluster' ? ['-w', '2'] : [];
    const srv = startApp(t, APP, {
      args: args(pidfile, state, [...extra, '--control-url', 'auto']),
    });
    await srv.waitForEvent('control.server.listening', 20_000);
    const lockFile = `${pidfile}.lock`;
    const holdsLock = (pid: number): boolean => {
      try {
        return fs
          .readdirSync(`/proc/${pid}/fd`)
          .some((fd) => fs.readlinkSync(`/proc/${pid}/fd/${fd}`) === lockFile);
      } catch {
        return false;
      }
    };

    for (let i = 1; i <= 2; i++) {
      await restart(srv, 'hot', { deadlineMs: 30_000 });
      // Another server with the same files is still refused, whatever its binds.
      const third = await runNserve(['start', APP, '--bind', 'tcp://127.0.0.1:0', ...args(pidfile, state)]);
      assert.equal(third.code, 2, third.stderr);
      const m = REFUSED.exec(third.stderr.trim());
      assert.ok(m, `restart ${i}: refused in one line: ${third.stderr}`);
      assert.equal(Number(m[2]), srv.pid);
      assert.equal(third.stderr.trim().split('\n').length, 1);
      // The state file alone is locked too.
      const byState = await runNserve(['start', APP, '--bind', 'tcp://127.0.0.1:0', '--state', state]);
      assert.equal(byState.code, 2, byState.stderr);
      assert.match(byState.stderr, /^nserve: error: --state \S+ is held by a running server \(PID \d+\)/);
    }
    assert.ok(holdsLock(srv.pid), 'the server holds the lock file open');
    if (mode === 'cluster') {
      const workers = childPids(srv.pid);
      assert.ok(workers.length >= 2);
      for (const w of workers) assert.ok(!holdsLock(w), `worker ${w} does not inherit the lock`);
    }

    const status = await ctl(['status', '-P', pidfile]);
    assert.equal(status.code, 0, status.stderr);
    assert.match(status.stdout, new RegExp(`pid ${srv.pid}\\b`));
    const stop = await ctl(['stop', '-P', pidfile]);
    assert.equal(stop.code, 0, stop.stderr);
    assert.deepEqual(await srv.waitExit(20_000), { code: 0, signal: null });
    assert.ok(!fs.existsSync(pidfile), 'the pidfile is removed at stop');
    assert.ok(fs.existsSync(lockFile), 'the lock file is left in place (never unlinked)');

    // The kernel let the lock go with the process: a new server takes the same files.
    const next = startApp(t, APP, { args: args(pidfile, state) });
    await next.waitForEvent('server.booted', 20_000);
    await until('the new server to write its pidfile', () => fs.existsSync(pidfile), 10_000);
    assert.equal(Number(fs.readFileSync(pidfile, 'utf8')), next.pid);
  });
}
