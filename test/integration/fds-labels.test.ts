// `nserve fds`: -S/-P like ctl, channels labelled as channels, descriptors inherited from the launcher
// told apart from the app's, Node's own hidden unless --all.
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { after, test } from 'node:test';
import type { ProcessFds } from '../../src/os/descriptors.js';
import { CLI, killAll, runNserve, serveApp, startCommand, tmpDir } from '../helpers/server.js';

after(killAll);

function parse(r: Awaited<ReturnType<typeof runNserve>>): ProcessFds[] {
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(
    r.stdout.map((l) => (l.raw === true ? l.msg : JSON.stringify(l))).join('\n'),
  ) as ProcessFds[];
}

test("cluster, -P pidfile: the master's worker channels are channels; Node's own only with --all", async (t) => {
  const dir = tmpDir(t);
  const pidfile = path.join(dir, 'n.pid');
  await serveApp(t, 'examples/hello.mjs', { workers: 2, args: ['--pidfile', pidfile] });
  const procs = parse(await runNserve(['fds', '-P', pidfile, '--json']));
  const master = procs.find((p) => p.role === 'master')!;
  const channels = master.fds.filter((f) => f.role === 'channel');
  // The lock beside the pidfile, told from outside by the flock the master holds on it.
  assert.deepEqual(
    master.fds.filter((f) => f.role === 'lock').map((f) => f.target),
    [`${pidfile}.lock`],
  );
  assert.equal(channels.length, 2, JSON.stringify(master.fds));
  assert.ok(channels.every((f) => f.target.startsWith('unnamed unix socket')));
  assert.ok(
    !master.fds.some((f) => f.role === 'app'),
    `nothing of the app's in the master: ${JSON.stringify(master.fds)}`,
  );
  assert.ok(!procs.some((p) => p.fds.some((f) => f.role === 'node')), 'Node internals hidden');
  assert.ok(master.count > master.fds.length, 'the count still includes them');
  const all = parse(await runNserve(['fds', '-P', pidfile, '--json', '--all']));
  const eventpoll = all
    .find((p) => p.role === 'master')!
    .fds.filter((f) => f.target === 'anon_inode:[eventpoll]');
  assert.ok(eventpoll.length > 0 && eventpoll.every((f) => f.role === 'node'));
  const text = (await runNserve(['fds', '-P', pidfile])).stdout.map((l) => String(l.msg)).join('\n');
  assert.match(text, /^master pid \d+: \d+ descriptors \(\d+ of Node's own not shown: --all\)$/m);
  assert.match(text, /^ +\d+ channel +socket/m);
});

test('a descriptor inherited from the launching shell is labelled inherited, and its leak hint names the launcher', async (t) => {
  const dir = tmpDir(t);
  const state = path.join(dir, 'n.state');
  // fd 40: high enough that Node does not mark it close-on-exec at start-up (PITFALLS.md).
  const srv = startCommand('/bin/bash', [
    '-c',
    `exec 40</etc/hostname; exec "${process.execPath}" "${CLI}" start examples/hello.mjs --bind tcp://127.0.0.1:0 --control-url auto --state "${state}"`,
  ]);
  t.after(() => srv.kill());
  await srv.port(20_000);
  const procs = parse(await runNserve(['fds', '-S', state, '--json']));
  const fd40 = procs[0]!.fds.find((f) => f.fd === 40);
  assert.equal(fd40?.role, 'inherited', JSON.stringify(procs[0]!.fds));
  assert.equal(fd40?.wouldLeak, true);
  assert.ok(!procs[0]!.fds.some((f) => f.role === 'app'), JSON.stringify(procs[0]!.fds));
  const mark = srv.lines.length;
  srv.signal('SIGUSR2');
  const leak = await srv.waitForEvent('fds.leak.closed', 20_000, mark, (l) => l.fd === 40);
  assert.match(
    String(leak.msg),
    /inherited from the launching process, not opened by the app\): fix the launcher/,
  );
  assert.equal(leak.inherited, true);
});

test('nserve fds with nothing to find the server: one line naming -S, -P, --pid', async () => {
  const r = await runNserve(['fds']);
  assert.equal(r.code, 2);
  assert.equal(
    r.stderr,
    'nserve: error: nserve fds needs -S STATE, -P PIDFILE, --pid PID or --control-url URL\n',
  );
});
