// The launcher's refusals, one table for every mode: what each action gets in each state, and what a mode
// that lacks a capability answers. The integration test (launcher-refusals) checks the same words reach a
// client of each real mode.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { ControlAction } from '../../src/control/status.js';
import type { ServerState } from '../../src/launcher/lifecycle.js';
import { type Capabilities, type Capability, refusal } from '../../src/launcher/refusals.js';

const ALL: Capability[] = ['hot-restart', 'phased-restart', 'resize', 'worker-directory', 'certs'];
const cluster: Capabilities = { has: new Set(ALL), why: () => 'needs an ssl:// bind (none is configured)' };
const single: Capabilities = {
  has: new Set(['hot-restart', 'worker-directory']),
  phasedAsHot: true,
  why: (c) => (c === 'certs' ? 'needs an ssl:// bind (none is configured)' : 'needs cluster mode (-w N)'),
};
const portable: Capabilities = {
  has: new Set(),
  why: () => "needs nserve's native addon, which is unavailable: X",
};
const ACTIONS: ControlAction[] = [
  'stop',
  'halt',
  'restart',
  'phased-restart',
  'rollback',
  'workers+1',
  'workers-1',
  'reload-worker-directory',
  'reload-certs',
];
const gate = (state: ServerState, extra: { pendingStop?: boolean; halting?: boolean } = {}) => ({
  state,
  pendingStop: extra.pendingStop ?? false,
  halting: extra.halting ?? false,
});

test('running: a cluster refuses nothing; single mode refuses only what needs workers or an ssl:// bind', () => {
  for (const a of ACTIONS) assert.equal(refusal(a, gate('running'), cluster), undefined, a);
  const singleAnswers = Object.fromEntries(ACTIONS.map((a) => [a, refusal(a, gate('running'), single)]));
  assert.deepEqual(singleAnswers, {
    stop: undefined,
    halt: undefined,
    restart: undefined,
    'phased-restart': undefined, // runs as a hot restart
    rollback: undefined,
    'workers+1': 'changing the worker count needs cluster mode (-w N)',
    'workers-1': 'changing the worker count needs cluster mode (-w N)',
    'reload-worker-directory': undefined,
    'reload-certs': 'reload-certs needs an ssl:// bind (none is configured)',
  });
});

test('portable mode: everything but stop and halt is refused with why the addon is missing', () => {
  for (const a of ACTIONS) {
    const r = refusal(a, gate('running'), portable);
    if (a === 'stop' || a === 'halt') assert.equal(r, undefined, a);
    else assert.match(String(r), /needs nserve's native addon, which is unavailable: X$/, a);
  }
});

test('the same words in every mode for a state: restarting, stopping, booting', () => {
  for (const caps of [cluster, single]) {
    assert.equal(refusal('restart', gate('restarting'), caps), 'a restart is in progress');
    assert.equal(refusal('phased-restart', gate('restarting'), caps), 'a restart is in progress');
    assert.equal(refusal('rollback', gate('restarting'), caps), 'a restart is in progress');
    assert.equal(refusal('stop', gate('restarting'), caps), undefined, 'a stop cancels the restart');
    assert.equal(refusal('stop', gate('restarting', { pendingStop: true }), caps), 'already stopping');
    assert.equal(
      refusal('restart', gate('restarting', { pendingStop: true }), caps),
      'the server is stopping',
    );
    assert.equal(refusal('stop', gate('stopping'), caps), 'already stopping');
    assert.equal(refusal('restart', gate('stopping'), caps), 'the server is stopping');
    assert.equal(refusal('halt', gate('stopping'), caps), undefined, 'a halt ends a graceful stop');
    assert.equal(refusal('halt', gate('stopping', { halting: true }), caps), 'already halting');
    assert.equal(refusal('restart', gate('booting'), caps), 'the server is still booting');
    assert.equal(refusal('stop', gate('booting'), caps), undefined);
    // What later spawns load: any state.
    assert.equal(refusal('reload-worker-directory', gate('restarting'), caps), undefined);
  }
  assert.equal(
    refusal('reload-certs', gate('restarting'), cluster),
    'a restart is in progress (it reads the certificates afresh)',
  );
});
