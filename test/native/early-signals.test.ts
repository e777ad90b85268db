// The restart signals while a hot restart's image starts: the preloaded recorder (nserve_signals.so,
// native/early_signals.cc) keeps them from being fatal and the addon takes what it recorded; SIGUSR1,
// which Node's --disable-sigusr1 keeps blocked for good, is delivered once unblocked.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import * as native from '../../src/native/index.js';
import { Child, fixture, nodeFixture } from './helpers.js';

const T = { timeout: 30_000 };

describe('early signals', () => {
  test(
    'the preloaded recorder keeps USR2 and HUP from being fatal; the addon takes each once',
    T,
    async (t) => {
      assert.ok(native.signalPreload, 'nserve_signals.so is built beside the addon');
      const child = nodeFixture(t, 'early-signals.mjs', ['record'], {
        env: { ...process.env, LD_PRELOAD: native.signalPreload },
      });
      const { pid } = await child.json<{ pid: number }>('pid');
      process.kill(pid, 'SIGUSR2');
      process.kill(pid, 'SIGHUP');
      await new Promise((r) => setTimeout(r, 50));
      process.kill(pid, 'SIGUSR2');
      const out = await child.json<{ recorded: string[]; again: string[] }>('recorded');
      assert.deepEqual(out.recorded.slice().sort(), ['SIGHUP', 'SIGUSR2', 'SIGUSR2']);
      assert.deepEqual(out.again, [], 'taken once');
      assert.deepEqual(await child.exited(), { code: 0, signal: null }, 'not killed');
    },
  );

  test('without the recorder: takeEarlySignals says so (undefined)', () => {
    assert.equal(native.takeEarlySignals(['SIGUSR2']), undefined);
  });

  const [major = 0, minor = 0] = process.versions.node.split('.').map(Number);
  const hasFlag = major > 23 || (major === 23 && minor >= 7) || (major === 22 && minor >= 14);
  test('--disable-sigusr1 holds SIGUSR1 blocked even with a handler; unblockSignals delivers it', {
    ...T,
    skip: hasFlag ? false : `Node ${process.version} has no --disable-sigusr1 (22.14+)`,
  }, async (t) => {
    const flagged = new Child(t, process.execPath, [
      '--disable-sigusr1',
      fixture('early-signals.mjs'),
      'unblock',
    ]);
    assert.equal((await flagged.json<{ before: number }>('before')).before, 0, 'held pending while blocked');
    assert.equal((await flagged.json<{ after: number }>('after')).after, 1, 'delivered once unblocked');
  });
});
