import assert from 'node:assert/strict';
import { closeSync, fstatSync, openSync, readSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import * as native from '../../src/native/index.js';
import { tempDir } from './helpers.js';

const O_NONBLOCK = 0o4000;
const T = { timeout: 10_000 };

function raw(fd: number): native.RawFd {
  const entry = native.listFdsRaw().find((f) => f.fd === fd);
  assert.ok(entry, `fd ${fd} is listed`);
  return entry;
}

test('setCloexec/getCloexec toggle FD_CLOEXEC', T, (t) => {
  const path = join(tempDir(t), 'f');
  writeFileSync(path, 'x');
  const fd = openSync(path, 'r');
  try {
    assert.equal(native.getCloexec(fd), true, 'Node opens with O_CLOEXEC');
    native.setCloexec(fd, false);
    assert.equal(native.getCloexec(fd), false);
    assert.equal(raw(fd).cloexec, false);
    native.setCloexec(fd, false);
    native.setCloexec(fd, true);
    assert.equal(native.getCloexec(fd), true);
    assert.equal(raw(fd).cloexec, true);
  } finally {
    closeSync(fd);
  }
});

test('setNonblock toggles O_NONBLOCK', T, (t) => {
  const path = join(tempDir(t), 'f');
  writeFileSync(path, 'x');
  const fd = openSync(path, 'r');
  try {
    assert.equal(raw(fd).flags & O_NONBLOCK, 0);
    native.setNonblock(fd, true);
    assert.equal(raw(fd).flags & O_NONBLOCK, O_NONBLOCK);
    native.setNonblock(fd, false);
    assert.equal(raw(fd).flags & O_NONBLOCK, 0);
  } finally {
    closeSync(fd);
  }
});

test('dup gives a close-on-exec copy (>= 3) of the same open file', T, (t) => {
  const path = join(tempDir(t), 'f');
  writeFileSync(path, 'abcdef');
  const fd = openSync(path, 'r');
  native.setCloexec(fd, false);
  const copy = native.dup(fd);
  try {
    assert.notEqual(copy, fd);
    assert.ok(copy >= 3);
    assert.equal(native.getCloexec(copy), true);
    assert.equal(native.getCloexec(fd), false, 'the original keeps its flag');
    assert.equal(fstatSync(copy).ino, fstatSync(fd).ino);
    const buf = Buffer.alloc(2);
    readSync(fd, buf, 0, 2, null);
    readSync(copy, buf, 0, 2, null);
    assert.equal(buf.toString(), 'cd', 'the offset is shared');
  } finally {
    native.close(copy);
    closeSync(fd);
  }
});

test('close closes; a descriptor that is not open is EBADF', T, () => {
  const [a, b] = native.socketpair();
  native.close(a);
  native.close(b);
  assert.throws(() => fstatSync(a), { code: 'EBADF' });
  // Not `a` again: another thread may have been handed that number meanwhile.
  const unused = Math.max(...native.listFdsRaw().map((f) => f.fd)) + 1000;
  assert.throws(() => native.close(unused), {
    code: 'EBADF',
    errno: -9,
    syscall: 'close',
    message: 'close EBADF',
  });
  assert.throws(() => native.getCloexec(unused), { code: 'EBADF', syscall: 'fcntl' });
});

test('bad arguments are TypeError or RangeError', T, () => {
  assert.throws(() => native.setCloexec('1' as unknown as number, true), {
    name: 'TypeError',
    code: 'ERR_INVALID_ARG_TYPE',
  });
  assert.throws(() => native.setCloexec(1, 'yes' as unknown as boolean), { name: 'TypeError' });
  assert.throws(() => native.dup(1.5), { name: 'RangeError', code: 'ERR_OUT_OF_RANGE' });
  assert.throws(() => native.close(-1), { name: 'RangeError' });
});
