import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import * as native from '../../src/native/index.js';
import { Child, fixture, tempDir } from './helpers.js';

const T = { timeout: 20_000 };

async function receiver(t: Parameters<typeof tempDir>[0], address: string): Promise<Child> {
  const child = new Child(t, 'python3', [fixture('notify_receiver.py'), address]);
  await child.line('the receiver to bind', (l) => l === 'ready');
  return child;
}

describe('sdNotify and notify', () => {
  test('a datagram to a path', T, async (t) => {
    const path = join(tempDir(t), 'notify.sock');
    const rx = await receiver(t, path);
    native.sdNotify(path, 'READY=1\nSTATUS=serving');
    assert.deepEqual(await rx.json('datagram'), { datagram: 'READY=1\nSTATUS=serving' });
  });

  test('a datagram to an abstract address ("@name")', T, async (t) => {
    const name = `@nserve-notify-${process.pid}-${Date.now()}`;
    const rx = await receiver(t, name);
    assert.equal(native.notify('STOPPING=1', { NOTIFY_SOCKET: name }), true);
    assert.deepEqual(await rx.json('datagram'), { datagram: 'STOPPING=1' });
  });

  test('sdNotify throws: ENOENT for no file, ECONNREFUSED for a dead receiver', T, async (t) => {
    const dir = tempDir(t);
    const missing = join(dir, 'missing.sock');
    assert.throws(() => native.sdNotify(missing, 'READY=1'), {
      code: 'ENOENT',
      syscall: 'sendto',
      path: missing,
    });

    const path = join(dir, 'dead.sock');
    const rx = await receiver(t, path);
    process.kill(rx.pid, 'SIGKILL');
    await rx.exited();
    assert.throws(() => native.sdNotify(path, 'READY=1'), { code: 'ECONNREFUSED', syscall: 'sendto', path });
  });

  test('notify is best-effort: false when NOTIFY_SOCKET is unset or sending fails', T, (t) => {
    assert.equal(native.notify('READY=1', {}), false);
    assert.equal(native.notify('READY=1', { NOTIFY_SOCKET: '' }), false);
    assert.equal(native.notify('READY=1', { NOTIFY_SOCKET: join(tempDir(t), 'nobody.sock') }), false);
    assert.equal(native.notify('READY=1', { NOTIFY_SOCKET: `@nserve-nobody-${process.pid}` }), false);
    assert.equal(native.notify('READY=1', { NOTIFY_SOCKET: `/${'x'.repeat(200)}` }), false);
    assert.throws(() => native.notify(1 as unknown as string, {}), { name: 'TypeError' });
  });
});
