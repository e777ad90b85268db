import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import * as native from '../../src/native/index.js';
import { deadline, nodeFixture } from './helpers.js';

const T = { timeout: 20_000 };

type Event = { readable: boolean; hangup: boolean; error: Error | null };

/** Resolves with the next poll event on fd; the watcher is stopped afterwards. */
function nextEvent(fd: number, what: string): { event: Promise<Event>; watcher: native.Watcher } {
  let watcher: native.Watcher | undefined;
  const event = new Promise<Event>((resolve) => {
    watcher = native.watchReadable(fd, (readable, hangup, error) => {
      watcher?.stop();
      resolve({ readable, hangup, error });
    });
  });
  return { event: deadline(event, 5000, what), watcher: watcher! };
}

describe('watchReadable', () => {
  test('waiting does not block the event loop', T, async () => {
    const [a, b] = native.socketpair();
    try {
      let ticks = 0;
      const interval = setInterval(() => ticks++, 10);
      const { event } = nextEvent(a, 'a readable event');
      const sender = setTimeout(() => native.sendFds(b, [], 'ping'), 150);
      const got = await event;
      clearInterval(interval);
      clearTimeout(sender);
      assert.deepEqual(got, { readable: true, hangup: false, error: null });
      assert.ok(ticks >= 5, `the interval kept ticking while we waited (${ticks} ticks)`);
      assert.deepEqual(native.recvFds(a), { data: Buffer.from('ping'), fds: [] });
    } finally {
      native.close(a);
      native.close(b);
    }
  });

  test('a closed peer is reported as hangup', T, async () => {
    const [a, b] = native.socketpair();
    try {
      const { event } = nextEvent(a, 'a hangup event');
      native.close(b);
      const got = await event;
      assert.equal(got.hangup, true);
      assert.equal(got.error, null);
      assert.deepEqual(native.recvFds(a), { data: Buffer.alloc(0), fds: [] });
    } finally {
      native.close(a);
    }
  });

  test(
    'stop is idempotent, ref/unref after stop are no-ops, and the fd can be watched again',
    T,
    async () => {
      const [a, b] = native.socketpair();
      try {
        const first = native.watchReadable(a, () => assert.fail('a stopped watcher must not fire'));
        first.unref();
        first.ref();
        first.stop();
        first.stop();
        first.ref();
        first.unref();
        const { event } = nextEvent(a, 'an event on the re-watched fd');
        native.sendFds(b, [], 'again');
        assert.equal((await event).readable, true);
      } finally {
        native.close(a);
        native.close(b);
      }
    },
  );

  test('an fd libuv already watches is refused with EEXIST', T, () => {
    const [a, b] = native.socketpair();
    const watcher = native.watchReadable(a, () => {});
    try {
      assert.throws(() => native.watchReadable(a, () => {}), { code: 'EEXIST', syscall: 'uv_poll_init' });
    } finally {
      watcher.stop();
      native.close(a);
      native.close(b);
    }
  });

  test('arguments are checked', T, () => {
    assert.throws(() => native.watchReadable(-1, () => {}), { name: 'RangeError' });
    assert.throws(() => native.watchReadable(0, 'x' as unknown as () => void), { name: 'TypeError' });
  });

  test('an exception thrown by onEvent reaches process "uncaughtException"', T, async (t) => {
    const child = nodeFixture(t, 'watch.mjs', ['throw-handled']);
    assert.deepEqual(await child.json('caught'), { caught: 'boom from onEvent' });
    assert.deepEqual(await child.exited(), { code: 0, signal: null });
  });

  test('with no handler it is an ordinary uncaught exception (exit 1), not an abort', T, async (t) => {
    const child = nodeFixture(t, 'watch.mjs', ['throw-unhandled']);
    assert.deepEqual(await child.exited(), { code: 1, signal: null });
    assert.match(child.stderr, /boom from onEvent/);
  });

  test('a watcher keeps the process alive unless unref()ed', T, async (t) => {
    const unrefd = nodeFixture(t, 'watch.mjs', ['unref']);
    assert.deepEqual(await unrefd.exited(), { code: 0, signal: null });
    assert.match(unrefd.stdout, /"exiting":true/);

    const refd = nodeFixture(t, 'watch.mjs', ['ref']);
    await refd.json('watching');
    const stillRunning = await Promise.race([
      refd.exited().then(() => false),
      new Promise<boolean>((resolve) => setTimeout(() => resolve(true), 500)),
    ]);
    assert.equal(stillRunning, true, 'the ref()ed watcher kept the child alive for 500 ms');
    process.kill(refd.pid, 'SIGTERM');
    assert.deepEqual(await refd.exited(), { code: null, signal: 'SIGTERM' });
  });

  // Node aborts a worker whose loop still has open handles, and node-addon-api
  // aborts on N-API calls refused during termination: neither may happen.
  for (const [mode, code] of [
    ['worker-exit', 3],
    ['worker-terminate', 1],
    ['worker-busy', 1],
  ] as const) {
    test(`a worker thread that ends with a watcher running closes it (${mode})`, T, async (t) => {
      const child = nodeFixture(t, 'watch.mjs', [mode]);
      const { workerExit } = await child.json<{ workerExit: number }>('workerExit');
      assert.equal(workerExit, code);
      assert.deepEqual(await child.exited(), { code: 0, signal: null }, child.stderr);
    });
  }
});
