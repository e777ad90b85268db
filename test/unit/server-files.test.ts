// What counts as nserve's own pidfile or state file: a file that is not is never replaced (pidfile.ts).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { pidIn } from '../../src/pidfile.js';
import { statePidIn } from '../../src/statefile.js';

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
