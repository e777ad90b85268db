import assert from 'node:assert/strict';
import { closeSync, fstatSync, openSync, readSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import * as native from '../../src/native/index.js';
import { Child, deadline, fixture, nodeFixture, openFds, receive, tempDir } from './helpers.js';

const O_NONBLOCK = 0o4000;
const T = { timeout: 20_000 };

/** A socketpair whose ends are closed after the test unless the test closed them with `close`. */
function pair(t: { after(fn: () => void): void }) {
  const [a, b] = native.socketpair();
  const open = new Set([a, b]);
  t.after(() => {
    for (const fd of open) native.close(fd);
  });
  return {
    a,
    b,
    close(fd: number): void {
      open.delete(fd);
      native.close(fd);
    },
  };
}

function httpGet(port: number): Promise<string> {
  const body = new Promise<string>((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/', agent: false }, (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (chunk: string) => {
        text += chunk;
      });
      res.on('end', () => resolve(text));
    });
    req.on('error', reject);
  });
  return deadline(body, 5000, `an HTTP answer on port ${port}`);
}

describe('socketpair, sendFds, recvFds', () => {
  test('both ends are close-on-exec, non-blocking, unnamed unix sockets', T, (t) => {
    const { a, b } = pair(t);
    for (const fd of [a, b]) {
      assert.equal(native.getCloexec(fd), true);
      const raw = native.listFdsRaw().find((f) => f.fd === fd);
      assert.ok(raw);
      assert.equal(raw.flags & O_NONBLOCK, O_NONBLOCK);
      assert.match(raw.target, /^socket:\[\d+\]$/);
      assert.deepEqual(native.localAddress(fd), { family: 'unix', path: '' });
    }
  });

  test('null when empty; messages keep their boundaries; EOF when the peer closes', T, (t) => {
    const { a, b, close } = pair(t);
    assert.equal(native.recvFds(a), null);
    native.sendFds(b, [], 'first');
    native.sendFds(b, [], Buffer.from('second'));
    assert.deepEqual(native.recvFds(a), { data: Buffer.from('first'), fds: [] });
    assert.deepEqual(native.recvFds(a), { data: Buffer.from('second'), fds: [] });
    assert.equal(native.recvFds(a), null);
    close(b);
    assert.deepEqual(native.recvFds(a), { data: Buffer.alloc(0), fds: [] });
    assert.throws(() => native.sendFds(a, [], 'to nobody'), { code: 'EPIPE', syscall: 'sendmsg' });
  });

  test('a passed descriptor arrives as a new, close-on-exec fd for the same file', T, (t) => {
    const { a, b } = pair(t);
    const path = join(tempDir(t), 'data.txt');
    writeFileSync(path, 'abcdefgh');
    const file = openSync(path, 'r');
    native.setCloexec(file, false);
    try {
      native.sendFds(b, [file, file], 'two copies');
      const got = native.recvFds(a);
      assert.ok(got);
      assert.equal(got.data.toString(), 'two copies');
      assert.equal(got.fds.length, 2);
      for (const fd of got.fds) {
        assert.notEqual(fd, file);
        assert.equal(native.getCloexec(fd), true, 'MSG_CMSG_CLOEXEC');
        assert.equal(fstatSync(fd).ino, fstatSync(file).ino);
      }
      // Same open file description: the offset is shared.
      const buf = Buffer.alloc(3);
      readSync(got.fds[0]!, buf, 0, 3, null);
      readSync(file, buf, 0, 3, null);
      assert.equal(buf.toString(), 'def');
      for (const fd of got.fds) native.close(fd);
    } finally {
      closeSync(file);
    }
  });

  test('a full channel throws EAGAIN instead of blocking', T, (t) => {
    const { b } = pair(t);
    const big = Buffer.alloc(60 * 1024, 1);
    let error: NodeJS.ErrnoException | undefined;
    for (let i = 0; i < 10_000 && error === undefined; i++) {
      try {
        native.sendFds(b, [], big);
      } catch (err) {
        error = err as NodeJS.ErrnoException;
      }
    }
    assert.ok(error, 'the channel filled up within 10000 messages');
    assert.equal(error.code, 'EAGAIN');
    assert.equal(error.syscall, 'sendmsg');
  });

  test('limits: 64 fds, 1 byte to 64 KiB of payload', T, (t) => {
    const { a, b } = pair(t);
    assert.throws(() => native.sendFds(b, new Array(65).fill(a), 'x'), { name: 'RangeError' });
    assert.throws(() => native.sendFds(b, [], ''), { name: 'RangeError' });
    assert.throws(() => native.sendFds(b, [], Buffer.alloc(64 * 1024 + 1)), { name: 'RangeError' });
    assert.throws(() => native.sendFds(b, [-1], 'x'), { name: 'RangeError' });
    assert.throws(() => native.sendFds(b, [], 42 as unknown as string), { name: 'TypeError' });
    assert.throws(() => native.sendFds(b, 'x' as unknown as number[], 'x'), { name: 'TypeError' });

    native.sendFds(b, new Array(64).fill(a), Buffer.alloc(64 * 1024, 7));
    const got = native.recvFds(a);
    assert.ok(got);
    assert.equal(got.data.length, 64 * 1024);
    assert.equal(got.fds.length, 64);
    for (const fd of got.fds) native.close(fd);
  });

  for (const mode of ['too-many', 'too-big']) {
    test(`a truncated message (${mode}) throws EMSGSIZE and leaks no descriptor`, T, async (t) => {
      const { a: mine, b: theirs, close } = pair(t);
      const sender = new Child(t, 'python3', [fixture('send_fds.py'), mode], {
        stdio: ['ignore', 'pipe', 'pipe', theirs],
      });
      close(theirs);
      await sender.line('python to send', (l) => l === 'sent');
      const before = openFds();
      assert.throws(() => native.recvFds(mine), { code: 'EMSGSIZE', syscall: 'recvmsg', errno: -90 });
      assert.deepEqual(openFds(), before);
      assert.deepEqual((await sender.exited()).code, 0);
      assert.deepEqual(native.recvFds(mine), { data: Buffer.alloc(0), fds: [] });
    });
  }

  test('a listening socket passed to a child process serves HTTP there', T, async (t) => {
    const { a: mine, b: theirs, close } = pair(t);
    const child = nodeFixture(t, 'serve-fd.mjs', [], { stdio: ['ignore', 'pipe', 'pipe', theirs] });
    close(theirs);

    const listener = native.listen({ family: 'tcp4', host: '127.0.0.1', port: 0 });
    const address = native.localAddress(listener);
    assert.ok(address.family === 'IPv4');
    native.sendFds(mine, [listener], 'socketpair');
    native.close(listener); // the child holds it now

    const reply = await receive(mine);
    assert.deepEqual(reply.fds, []);
    const state = JSON.parse(reply.data.toString()) as { cloexec: boolean; pid: number };
    assert.equal(state.pid, child.pid);
    assert.equal(state.cloexec, true, 'received fds are close-on-exec');

    assert.equal(await httpGet(address.port), `hello from ${child.pid} via socketpair`);

    close(mine); // EOF: the child closes its server and exits
    assert.deepEqual(await child.exited(), { code: 0, signal: null });
  });
});
