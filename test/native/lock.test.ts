import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import {
  existsSync,
  fstatSync,
  lstatSync,
  mkdirSync,
  readFileSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { pathToFileURL } from 'node:url';
import * as native from '../../src/native/index.js';
import { ROOT, tempDir } from './helpers.js';

const T = { timeout: 10_000 };
const NATIVE_JS = pathToFileURL(join(ROOT, 'dist', 'src', 'native', 'index.js')).href;

/** Try the lock from another process: 'locked', or the error code it got. */
function lockFromAnotherProcess(path: string): string {
  const script = `import * as n from ${JSON.stringify(NATIVE_JS)};
    try { n.lockFile(process.argv[1]); console.log('locked'); } catch (e) { console.log(e.code); }`;
  const out = spawnSync(process.execPath, ['--input-type=module', '-e', script, path], { encoding: 'utf8' });
  assert.equal(out.status, 0, out.stderr);
  return out.stdout.trim();
}

test(
  'lockFile creates a regular file (0644 before the umask) and holds the lock on a close-on-exec fd',
  T,
  (t) => {
    const path = join(tempDir(t), 'app.pid.lock');
    const fd = native.lockFile(path);
    try {
      assert.ok(fd > 2);
      assert.equal(native.getCloexec(fd), true, 'close-on-exec: workers never inherit it');
      const st = lstatSync(path);
      assert.ok(st.isFile());
      assert.equal(st.mode & 0o777, 0o644 & ~process.umask());
      assert.equal(fstatSync(fd).ino, st.ino);
      assert.equal(readFileSync(path, 'utf8'), '', 'nothing is written to it');
      assert.equal(lockFromAnotherProcess(path), 'EAGAIN', 'another process is refused');
    } finally {
      native.close(fd);
    }
    assert.equal(lockFromAnotherProcess(path), 'locked', 'closing the descriptor lets the lock go');
  },
);

test('a held lock: EAGAIN, shaped like a Node system error; isLockHeld says so', T, (t) => {
  const path = join(tempDir(t), 'state.json.lock');
  const fd = native.lockFile(path);
  try {
    // Another open file description, even in this process, is refused: the lock is the open file's.
    let caught: unknown;
    assert.throws(
      () => native.lockFile(path),
      (err: unknown) => {
        caught = err;
        return true;
      },
    );
    assert.ok(caught instanceof Error);
    assert.deepEqual(
      { ...(caught as object), message: caught.message },
      { code: 'EAGAIN', errno: -11, syscall: 'flock', path, message: `flock EAGAIN ${path}` },
    );
    assert.equal(native.isLockHeld(caught), true);
    assert.equal(native.isLockHeld(Object.assign(new Error('x'), { code: 'EWOULDBLOCK' })), true);
    assert.equal(native.isLockHeld(Object.assign(new Error('x'), { code: 'EACCES' })), false);
  } finally {
    native.close(fd);
  }
});

test('a symbolic link is never followed, and its target is neither created nor locked', T, (t) => {
  const dir = tempDir(t);
  const target = join(dir, 'victim');
  const link = join(dir, 'app.pid.lock');
  symlinkSync(target, link);
  assert.throws(() => native.lockFile(link), { code: 'ELOOP', syscall: 'open', path: link });
  assert.equal(existsSync(target), false, 'the dangling link did not create its target');
  writeFileSync(target, 'data');
  assert.throws(() => native.lockFile(link), { code: 'ELOOP' });
  assert.equal(lockFromAnotherProcess(target), 'locked', 'the target was never locked');
  assert.equal(readFileSync(target, 'utf8'), 'data');
});

test('anything but a regular file is refused before a lock is taken', T, (t) => {
  const dir = tempDir(t);
  const fifo = join(dir, 'fifo.lock');
  execFileSync('mkfifo', [fifo]);
  assert.throws(() => native.lockFile(fifo), { code: 'EINVAL', syscall: 'open', path: fifo });
  const sub = join(dir, 'dir.lock');
  mkdirSync(sub);
  assert.throws(() => native.lockFile(sub), { code: 'EISDIR', syscall: 'open' });
  const missing = join(dir, 'gone', 'x.lock');
  assert.throws(() => native.lockFile(missing), { code: 'ENOENT', syscall: 'open', path: missing });
});

test('bad arguments are TypeErrors', T, () => {
  assert.throws(() => native.lockFile(1 as unknown as string), {
    name: 'TypeError',
    code: 'ERR_INVALID_ARG_TYPE',
  });
  assert.throws(() => native.lockFile(''), { name: 'TypeError', code: 'ERR_INVALID_ARG_VALUE' });
  assert.throws(() => native.lockFile('a\0b'), { name: 'TypeError', code: 'ERR_INVALID_ARG_VALUE' });
});
