import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { constants } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import * as native from '../../src/native/index.js';
import { killPid, nodeFixture, tempDir, until } from './helpers.js';

const T = { timeout: 30_000 };

// A test below sends this process SIGUSR2. Node 24's test runner starts its test processes with
// diagnostic reports on signal (SIGUSR2) turned on: each run would leave a report.*.json in the cwd.
process.report.reportOnSignal = false;

/** The signal lines of /proc/thread-self/status: blocked (this thread), ignored, caught. */
function signalState(): Record<string, string> {
  const status = readFileSync('/proc/thread-self/status', 'utf8');
  const pick = (name: string) => new RegExp(`^${name}:\\s*(\\w+)$`, 'm').exec(status)?.[1] ?? '';
  return { SigBlk: pick('SigBlk'), SigIgn: pick('SigIgn'), SigCgt: pick('SigCgt') };
}

function hasSignal(mask: string, signal: NodeJS.Signals): boolean {
  return ((BigInt(`0x${mask}`) >> BigInt(constants.signals[signal] - 1)) & 1n) === 1n;
}

describe('execve', () => {
  test('only descriptors without close-on-exec survive; the PID stays', T, async (t) => {
    const dir = tempDir(t);
    const keepPath = join(dir, 'keep.txt');
    const dropPath = join(dir, 'drop.txt');
    writeFileSync(keepPath, 'keep');
    writeFileSync(dropPath, 'drop');
    const child = nodeFixture(t, 'exec.mjs', ['fds', keepPath, dropPath]);

    const old = await child.json<{ image: string; pid: number; keep: number; drop: number }>('keep');
    const fresh = await child.json<{ pid: number; fds: Record<string, string>; sigIgn: string }>('fds');
    assert.equal(old.pid, child.pid);
    assert.equal(fresh.pid, child.pid, 'execve keeps the PID');
    assert.equal(fresh.fds[old.keep], keepPath, 'the fd with close-on-exec cleared survived');
    assert.ok(!Object.values(fresh.fds).includes(dropPath), 'the close-on-exec fd did not');
    assert.ok(fresh.fds['1'], 'stdout survived (cleared before exec)');
    t.diagnostic(`SigIgn as the new node image's JavaScript starts: ${fresh.sigIgn}`);
    assert.deepEqual(await child.exited(), { code: 0, signal: null });
  });

  test(
    'signals: all handlers default except ignoreSignals, nothing blocked in the new image',
    T,
    async (t) => {
      const child = nodeFixture(t, 'exec.mjs', ['signals']);
      assert.deepEqual(await child.exited(), { code: 0, signal: null });
      const status = child.stdout;
      const field = (name: string) => new RegExp(`^${name}:\\s*(\\w+)$`, 'm').exec(status)?.[1] ?? '';
      assert.match(status, /^Name:\s*cat$/m);
      assert.equal(BigInt(`0x${field('SigBlk')}`), 0n, 'empty signal mask');
      assert.equal(hasSignal(field('SigIgn'), 'SIGUSR2'), true, 'SIGUSR2 stays ignored across exec');
      assert.equal(hasSignal(field('SigIgn'), 'SIGPIPE'), false, "Node's SIG_IGN for SIGPIPE is reset");
      assert.equal(BigInt(`0x${field('SigIgn')}`), 1n << BigInt(constants.signals.SIGUSR2 - 1));
    },
  );

  test('blockSignals: the new image starts with exactly those blocked', T, async (t) => {
    const child = nodeFixture(t, 'exec.mjs', ['signals-blocked']);
    assert.deepEqual(await child.exited(), { code: 0, signal: null });
    const field = (name: string) => new RegExp(`^${name}:\\s*(\\w+)$`, 'm').exec(child.stdout)?.[1] ?? '';
    const usr2 = 1n << BigInt(constants.signals.SIGUSR2 - 1);
    assert.equal(BigInt(`0x${field('SigBlk')}`), usr2, 'only SIGUSR2 blocked');
    assert.equal(BigInt(`0x${field('SigIgn')}`), usr2, 'and ignored');
  });

  test('a failed execve throws ENOENT and leaves handlers and mask as they were', T, async () => {
    let fired = 0;
    const onUsr2 = () => fired++;
    process.on('SIGUSR2', onUsr2);
    try {
      const before = signalState();
      assert.ok(hasSignal(before.SigCgt, 'SIGUSR2'), 'Node caught SIGUSR2 before');
      const path = '/nonexistent/nserve-test-binary';
      assert.throws(() => native.execve(path, [path], [], { ignoreSignals: ['SIGHUP'] }), {
        code: 'ENOENT',
        errno: -2,
        syscall: 'execve',
        path,
        message: `execve ENOENT ${path}`,
      });
      assert.deepEqual(signalState(), before);
      process.kill(process.pid, 'SIGUSR2');
      await until(() => (fired === 1 ? true : undefined), 5000, 'the SIGUSR2 handler after a failed execve');
    } finally {
      process.off('SIGUSR2', onUsr2);
    }
  });

  test('arguments are checked', T, () => {
    assert.throws(() => native.execve('/bin/true', ['a\0b'], []), {
      name: 'TypeError',
      code: 'ERR_INVALID_ARG_VALUE',
    });
    assert.throws(() => native.execve('/bin/true', 'true' as unknown as string[], []), { name: 'TypeError' });
    assert.throws(
      () => native.execve('/bin/true', [], [], { ignoreSignals: ['SIGNOPE' as NodeJS.Signals] }),
      { name: 'TypeError', code: 'ERR_UNKNOWN_SIGNAL' },
    );
  });
});

describe('waitpid', () => {
  // libuv reaps the children it spawned (by PID, on SIGCHLD), racing any
  // waitpid of ours. Children inherited across execve are unknown to the new
  // image's libuv: the deterministic case, and the one nserve needs.
  test('reaps children inherited across execve: null while running, then code or signal', T, async (t) => {
    const child = nodeFixture(t, 'exec.mjs', ['waitpid']);
    const old = await child.json<{ sleeper: number; seven: number }>('sleeper');
    t.after(() => {
      killPid(old.sleeper);
      killPid(old.seven);
    });
    const result = await child.json<Record<string, unknown>>('killed', 15_000);
    assert.equal(result.pid, child.pid);
    assert.equal(result.running, null);
    assert.deepEqual(result.killed, { pid: old.sleeper, code: null, signal: 'SIGKILL' });
    assert.deepEqual(result.exited, { pid: old.seven, code: 7, signal: null });
    assert.equal(result.again, 'ECHILD', 'a reaped child is gone');
    assert.equal(result.init, 'ECHILD', 'PID 1 is not our child');
    assert.deepEqual(await child.exited(), { code: 0, signal: null });
  });

  test('a PID that is not our child is ECHILD', T, () => {
    assert.throws(() => native.waitpid(1), { code: 'ECHILD', syscall: 'waitpid', errno: -10 });
    assert.throws(() => native.waitpid(0), { name: 'RangeError' });
  });
});
