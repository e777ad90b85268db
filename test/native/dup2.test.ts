import assert from 'node:assert/strict';
import { closeSync, openSync, readFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import * as native from '../../src/native/index.js';
import { tempDir } from './helpers.js';

const T = { timeout: 10_000 };

test('dup2 points a descriptor number at another file, close-on-exec', T, (t) => {
  const dir = tempDir(t);
  const a = openSync(join(dir, 'a'), 'a');
  const b = openSync(join(dir, 'b'), 'a');
  try {
    writeSync(b, 'to b\n');
    native.dup2(a, b);
    writeSync(b, 'to a\n');
    assert.equal(readFileSync(join(dir, 'a'), 'utf8'), 'to a\n');
    assert.equal(readFileSync(join(dir, 'b'), 'utf8'), 'to b\n');
    assert.equal(native.getCloexec(b), true);
  } finally {
    closeSync(a);
    closeSync(b);
  }
});

test('dup2 errors are Node-shaped; arguments are checked first', T, () => {
  assert.throws(() => native.dup2(987654, 987655), { code: 'EBADF', syscall: 'dup3' });
  assert.throws(() => native.dup2(-1, 1), { code: 'ERR_OUT_OF_RANGE' });
  assert.throws(() => native.dup2('1' as unknown as number, 1), { code: 'ERR_INVALID_ARG_TYPE' });
});
