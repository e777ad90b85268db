// What counts as nserve's own pidfile or state file: a file that is not is never replaced (pidfile.ts);
// the lock beside each (control/lock.ts).
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { deviceOf, lockHolder, lockProblem, lockServerFiles, serverFiles } from '../../src/control/lock.js';
import { createLogger } from '../../src/log/logger.js';
import * as native from '../../src/native/index.js';
import { pidIn } from '../../src/os/pidfile.js';
import { statePidIn } from '../../src/os/state-file.js';

test('a pidfile holds a PID and nothing else', () => {
  assert.equal(pidIn('1234\n'), 1234);
  assert.equal(pidIn(' 77 '), 77);
  for (const text of ['', '\n', 'DATA\n', '0\n', '-5', '12 34', '1e3', '0x10', '12abc', '99999999999', '1.5'])
    assert.equal(pidIn(text), undefined, JSON.stringify(text));
});

test('a state file is the JSON nserve writes, recognised strictly', () => {
  const state = { version: 1, pid: 42, startedAt: '2026-01-01T00:00:00.000Z', nserve: '0.1.0' };
  assert.equal(statePidIn(JSON.stringify(state)), 42);
  assert.equal(statePidIn(JSON.stringify({ ...state, controlUrl: 'unix:///x', controlToken: 't' })), 42);
  // Another version may add a key: still nserve's.
  assert.equal(statePidIn(JSON.stringify({ ...state, later: true })), 42);
  for (const value of [
    { pid: 42 },
    { ...state, version: 2 },
    { ...state, pid: '42' },
    { ...state, pid: 0 },
    { ...state, pid: 1.5 },
    { ...state, nserve: undefined },
    { ...state, startedAt: 5 },
    { ...state, controlUrl: 5 },
    [state],
    null,
    'text',
  ])
    assert.equal(statePidIn(JSON.stringify(value)), undefined, JSON.stringify(value));
  assert.equal(statePidIn('DATA\n'), undefined);
  assert.equal(statePidIn(''), undefined);
});

test('the lock beside a file: taken, refused to a second taker with the holder, adopted after an exec', (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nserve-lock-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const log = createLogger({ level: 'silent', base: {} });
  const files = serverFiles({ pidfile: path.join(dir, 'app.pid'), stateFile: path.join(dir, 'app.state') });
  const held = lockServerFiles(files, undefined, log);
  assert.deepEqual(
    held.map((l) => l.file),
    [path.join(dir, 'app.pid.lock'), path.join(dir, 'app.state.lock')],
  );
  try {
    // Another open of the same file (a second server) is refused in one line, naming the holder.
    assert.throws(() => lockServerFiles(files, undefined, log), {
      code: 'ERR_NSERVE_ALREADY_RUNNING',
      message: `--pidfile ${path.join(dir, 'app.pid')} is held by a running server (PID ${process.pid}): stop it first, or give this server another --pidfile`,
    });
    assert.equal(lockHolder(path.join(dir, 'app.state.lock')), process.pid);
    assert.equal(lockProblem(files[1]!, held), undefined, 'a lock this server holds is no problem');
    assert.match(lockProblem(files[1]!, []) ?? '', /^--state .* is held by a running server/);
    // What a hot restart's new image does with the hand-off: the same descriptors, close-on-exec again.
    for (const l of held) native.setCloexec(l.fd, false);
    const adopted = lockServerFiles(files, held, log);
    assert.deepEqual(adopted, held);
    for (const l of adopted) assert.equal(native.getCloexec(l.fd), true);
  } finally {
    for (const l of held) native.close(l.fd);
  }
  // Released with its descriptor; the file stays (it is never unlinked).
  const again = lockServerFiles(files, undefined, log);
  for (const l of again) native.close(l.fd);
});

test('a lock path that is a symbolic link or not a regular file is refused in one line', (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nserve-lock-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const log = createLogger({ level: 'silent', base: {} });
  const pidfile = path.join(dir, 'app.pid');
  fs.symlinkSync(path.join(dir, 'elsewhere'), `${pidfile}.lock`);
  assert.throws(() => lockServerFiles(serverFiles({ pidfile }), undefined, log), {
    code: 'ERR_NSERVE_INVALID_CONFIG',
    message: `invalid --pidfile ${pidfile}: cannot lock ${pidfile}.lock (a symbolic link, never followed): remove it, or name a file in a directory only the server's user can write`,
  });
  assert.ok(!fs.existsSync(path.join(dir, 'elsewhere')));
  const stateFile = path.join(dir, 'app.state');
  fs.mkdirSync(`${stateFile}.lock`);
  assert.throws(() => lockServerFiles(serverFiles({ stateFile }), undefined, log), {
    code: 'ERR_NSERVE_INVALID_CONFIG',
    message: /^invalid --state .*: cannot lock .*app\.state\.lock \(EISDIR\)/,
  });
});

test('/proc/locks devices read as glibc splits st_dev', () => {
  assert.equal(deviceOf(0x801), '08:01');
  assert.equal(deviceOf(0xfd00), 'fd:00');
  assert.equal(deviceOf(0x12300845), '08:12345', 'a minor above 255');
  const line = (dev: string, ino: number, pid: number) =>
    `1: FLOCK  ADVISORY  WRITE ${pid} ${dev}:${ino} 0 EOF`;
  const st = fs.statSync(os.tmpdir());
  const dev = deviceOf(st.dev);
  assert.equal(lockHolder(os.tmpdir(), [line('00:99', st.ino, 7), line(dev, st.ino, 8)].join('\n')), 8);
  assert.equal(lockHolder(os.tmpdir(), line('00:99', st.ino, 7)), 7, 'overlayfs: a unique inode match');
  assert.equal(lockHolder(os.tmpdir(), `1: -> FLOCK  ADVISORY  WRITE 9 ${dev}:${st.ino} 0 EOF`), undefined);
});
