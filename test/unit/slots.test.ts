import assert from 'node:assert/strict';
import { test } from 'node:test';
import { assignment, planSlots, releasable, type ServingWorker } from '../../src/cluster/slots.js';

const tcp = ['t#0', 't#1', 't#2', 't#3'];
const unix = ['u#0'];

test('each worker gets slot i mod N of every bind; a single socket is shared by all', () => {
  assert.deepEqual(assignment([tcp, unix], 0, 2), ['t#0', 't#2', 'u#0']);
  assert.deepEqual(assignment([tcp, unix], 1, 2), ['t#1', 't#3', 'u#0']);
  // More workers than slots: they share.
  assert.deepEqual(assignment([['a#0', 'a#1']], 2, 3), ['a#0']);
});

test('slots of a worker that is not serving are lent to the least loaded serving one', () => {
  const serving: ServingWorker[] = [
    { index: 0, keys: new Set(['t#0', 't#2']) },
    { index: 2, keys: new Set(['t#2']) },
  ];
  // 4 slots, 3 workers (worker 0 has t#0 and t#3), worker 1 is down: its slot t#1 must go somewhere.
  const plan = planSlots([tcp], serving, 3);
  assert.deepEqual(plan.lent, [{ key: 't#1', to: 2 }], 'lent to worker 2, which has fewer slots');
  assert.deepEqual([...plan.want[0]!], ['t#0', 't#3']);
  assert.deepEqual([...plan.want[1]!].sort(), ['t#1', 't#2']);
  const covered = new Set(plan.want.flatMap((s) => [...s]));
  assert.deepEqual([...covered].sort(), tcp, 'every slot has an acceptor');
});

test('no serving worker: nothing to plan (the master holds the slots; the kernel queues)', () => {
  assert.deepEqual(planSlots([tcp], [], 2), { want: [], lent: [] });
});

test('a slot is released only while another serving worker accepts on it', () => {
  const serving: ServingWorker[] = [
    { index: 0, keys: new Set(['t#0', 't#1']) }, // was lent t#1
    { index: 1, keys: new Set() }, // its replacement: not accepting on t#1 yet
  ];
  const plan = planSlots([['t#0', 't#1']], serving, 2);
  assert.deepEqual(releasable(serving, plan.want, 0), [], 'keep t#1 until worker 1 accepts on it');
  const after: ServingWorker[] = [serving[0]!, { index: 1, keys: new Set(['t#1']) }];
  assert.deepEqual(releasable(after, plan.want, 0), ['t#1']);
});
