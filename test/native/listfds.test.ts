import assert from 'node:assert/strict';
import { closeSync, openSync, readSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import * as native from '../../src/native/index.js';
import { Child, fixture, receive, tempDir } from './helpers.js';

const T = { timeout: 20_000 };

function entry(list: native.FdInfo[], fd: number): native.FdInfo {
  const found = list.find((f) => f.fd === fd);
  assert.ok(found, `fd ${fd} is listed`);
  return found;
}

describe('listFds', () => {
  test(
    'this process: socket with its address, pipe, file with path and offset, directory, char device',
    T,
    async (t) => {
      const dir = tempDir(t);
      const path = join(dir, 'data.txt');
      writeFileSync(path, 'hello world');
      const file = openSync(path, 'r');
      readSync(file, Buffer.alloc(5), 0, 5, null);
      const directory = openSync(dir, 'r');
      const devNull = openSync('/dev/null', 'r');
      const listener = native.listen({ family: 'tcp4', host: '127.0.0.1', port: 0 });

      // A real pipe(2), made by python and passed to us over a socketpair.
      const [mine, theirs] = native.socketpair();
      const sender = new Child(t, 'python3', [fixture('send_fds.py'), 'pipe'], {
        stdio: ['ignore', 'pipe', 'pipe', theirs],
      });
      native.close(theirs);
      const message = await receive(mine);
      assert.equal(message.data.toString(), 'pipe');
      const [readEnd, writeEnd] = message.fds as [number, number];
      await sender.exited();

      try {
        const list = native.listFds();
        assert.deepEqual(
          list.map((f) => f.fd),
          [...list.map((f) => f.fd)].sort((a, b) => a - b),
          'sorted by fd',
        );

        const sock = entry(list, listener);
        assert.equal(sock.kind, 'socket');
        assert.match(sock.target, /^socket:\[\d+\]$/);
        assert.equal(sock.inode, Number(/\d+/.exec(sock.target)?.[0]));
        assert.deepEqual(sock.socket, native.localAddress(listener));
        assert.equal(sock.cloexec, true);

        const r = entry(list, readEnd);
        const w = entry(list, writeEnd);
        assert.equal(r.kind, 'pipe');
        assert.equal(w.kind, 'pipe');
        assert.equal(r.inode, w.inode, 'both ends of one pipe');
        assert.equal(r.flags & 3, 0, 'O_RDONLY');
        assert.equal(w.flags & 3, 1, 'O_WRONLY');

        const f = entry(list, file);
        assert.equal(f.kind, 'file');
        assert.equal(f.target, path);
        assert.equal(f.pos, 5);
        assert.equal(typeof f.inode, 'number');

        assert.equal(entry(list, directory).kind, 'directory');
        assert.equal(entry(list, devNull).kind, 'char');
        assert.equal(entry(list, devNull).target, '/dev/null');
        assert.equal(entry(list, mine).socket?.family, 'unix');

        const listingFds = list.filter((e) => e.target === '/proc/self/fd' || e.target.endsWith('/fd'));
        assert.deepEqual(listingFds, [], 'the listing does not report its own directory fd');
      } finally {
        for (const fd of [readEnd, writeEnd, mine, listener]) native.close(fd);
        for (const fd of [file, directory, devNull]) closeSync(fd);
      }
    },
  );

  test('another process: socket addresses found by inode in /proc/PID/net', T, async (t) => {
    const path = join(tempDir(t), 'child.sock');
    const script = `
      const net = require('node:net');
      const tcp = net.createServer().listen(0, '127.0.0.1', () => {
        net.createServer().listen(${JSON.stringify(path)}, () => {
          console.log(JSON.stringify({ port: tcp.address().port }));
        });
      });`;
    const child = new Child(t, process.execPath, ['-e', script]);
    const { port } = await child.json<{ port: number }>('port');

    const list = native.listFds(child.pid);
    const sockets = list.filter((f) => f.kind === 'socket').map((f) => f.socket);
    assert.deepEqual(
      sockets.filter((s) => s?.family === 'IPv4'),
      [{ family: 'IPv4', address: '127.0.0.1', port }],
    );
    assert.ok(
      sockets.some((s) => s?.family === 'unix' && s.path === path),
      `the unix listener is listed: ${JSON.stringify(sockets)}`,
    );
    assert.ok(list.every((f) => typeof f.cloexec === 'boolean' && f.target.length > 0));
  });

  test('a process that does not exist is ESRCH', T, () => {
    assert.throws(() => native.listFds(2 ** 31 - 1), { code: 'ESRCH', syscall: 'opendir' });
    assert.throws(() => native.listFdsRaw(0), { name: 'RangeError' });
  });
});
