import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MAX_SOCKETS_PER_WORKER } from '../../src/config/index.js';
import { MAX_FDS } from '../../src/native/index.js';

test('the config limit on sockets per worker is the descriptors one channel message carries', () => {
  assert.equal(MAX_SOCKETS_PER_WORKER, MAX_FDS);
});
