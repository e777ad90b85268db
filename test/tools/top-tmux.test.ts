// `nserve top` in a real terminal: a tmux pane 80 columns wide runs it against a `-w 2` server, the pane
// is captured before and after a hot restart (both old PIDs, then both new ones and the restart's line),
// it says "restarting" while the control server does not answer and goes on once it does, and q and
// Ctrl-C each give the shell its terminal back (main screen, cursor shown, the shell echoing again).
//
// Part of `npm run test:tools` (.ci/run installs tmux first), not `npm test`.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { after, before, test } from 'node:test';
import { startWithDashboard } from '../helpers/dashboard.js';
import { CLI, childPids, killAll, replacedWorkers, until } from '../helpers/server.js';

after(killAll);

/** A tmux server of our own (its own socket name), killed with everything in it at the end. */
const SOCKET = `nserve-top-test-${process.pid}`;

function tmux(...args: string[]): string {
  const r = spawnSync('tmux', ['-L', SOCKET, ...args], { encoding: 'utf8', timeout: 10_000 });
  if (r.error !== undefined) throw r.error;
  if (r.status !== 0) throw new Error(`tmux ${args.join(' ')}: ${r.stderr.trim()}`);
  return r.stdout;
}

const pane = (): string => tmux('capture-pane', '-p', '-t', 'top');
const flag = (name: string): string => tmux('display-message', '-p', '-t', 'top', `#{${name}}`).trim();

/**
 * Once top's process has exited and the shell is the pane's foreground process again. Its screen is
 * restored before it exits: keys typed in between would still reach top (raw mode), not the shell.
 */
const shellInFront = (): Promise<true> =>
  until(
    'the shell in the foreground again',
    () => (flag('pane_current_command') === 'sh' ? true : undefined),
    10_000,
  );

before(() => {
  const r = spawnSync('tmux', ['-V'], { stdio: 'ignore' });
  assert.ok(
    r.error === undefined && r.status === 0,
    'tmux not found: apt-get install --no-install-recommends tmux (Debian), as .ci/run does',
  );
});

after(() => {
  spawnSync('tmux', ['-L', SOCKET, 'kill-server'], { stdio: 'ignore' });
});

test('nserve top in an 80-column tmux pane: a hot restart shows live; q and Ctrl-C restore the terminal', {
  timeout: 90_000,
}, async (t) => {
  const { srv, state } = await startWithDashboard(t, 2);
  const oldPids = await until('2 workers', () => {
    const p = childPids(srv.pid);
    return p.length === 2 ? p : undefined;
  });
  // A shell in the pane, so that quitting top returns to it and the terminal's state can be read.
  tmux('new-session', '-d', '-s', 'top', '-x', '80', '-y', '30', 'sh');
  const command = `${process.execPath} ${CLI} top -S ${state}`;
  tmux('send-keys', '-t', 'top', command, 'Enter');
  const before = await until('top shows both workers', () => {
    const text = pane();
    return oldPids.every((p) => text.includes(` ${p} `)) && text.includes('[live]') ? text : undefined;
  });
  t.diagnostic(`before:\n${before}`);
  assert.equal(flag('alternate_on'), '1', 'top draws on the alternate screen');
  for (const line of before.split('\n')) assert.ok([...line].length <= 80, line);

  srv.signal('SIGUSR2');
  const newPids = await replacedWorkers(srv.pid, oldPids, 2, 20_000);
  const afterRestart = await until(
    'top shows the new workers and the restart',
    () => {
      const text = pane();
      return newPids.every((p) => text.includes(` ${p} `)) && /#1 +\S+ +hot +ok /.test(text)
        ? text
        : undefined;
    },
    10_000,
  );
  t.diagnostic(`after:\n${afterRestart}`);
  assert.ok(!oldPids.some((p) => afterRestart.includes(` ${p} `)), 'old PIDs still shown');

  // The control server stops answering (the master stopped: as during an exec, only longer): top says
  // so, keeps the last screen, and is live again as soon as it answers.
  process.kill(srv.pid, 'SIGSTOP');
  try {
    const away = await until('top says restarting', () => {
      const text = pane();
      return text.includes('[restarting…]') ? text : undefined;
    });
    assert.ok(
      newPids.every((p) => away.includes(` ${p} `)),
      'the last screen was not kept',
    );
  } finally {
    process.kill(srv.pid, 'SIGCONT');
  }
  await until('top is live again', () => (pane().includes('[live]') ? true : undefined));

  // q: top exits, the shell gets its screen back (main screen, cursor shown), and it echoes again.
  tmux('send-keys', '-t', 'top', 'q');
  await until('top exits on q', () => (flag('alternate_on') === '0' ? true : undefined), 5000);
  assert.equal(flag('cursor_flag'), '1', 'cursor hidden after q');
  await shellInFront();
  tmux('send-keys', '-t', 'top', 'echo typed-after-q', 'Enter');
  await until('the shell echoes again', () => (/^typed-after-q$/m.test(pane()) ? true : undefined), 10_000);

  // Ctrl-C: the same.
  tmux('send-keys', '-t', 'top', command, 'Enter');
  await until('top runs again', () =>
    flag('alternate_on') === '1' && pane().includes('[live]') ? true : undefined,
  );
  tmux('send-keys', '-t', 'top', 'C-c');
  await until('top exits on Ctrl-C', () => (flag('alternate_on') === '0' ? true : undefined), 5000);
  assert.equal(flag('cursor_flag'), '1', 'cursor hidden after Ctrl-C');
  await shellInFront();
  tmux('send-keys', '-t', 'top', 'echo typed-after-ctrl-c', 'Enter');
  await until(
    'the shell echoes again',
    () => (/^typed-after-ctrl-c$/m.test(pane()) ? true : undefined),
    10_000,
  );
});
