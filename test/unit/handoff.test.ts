import assert from 'node:assert/strict';
import { test } from 'node:test';
import { handedListeners, type Listener, parseBindUri } from '../../src/listen/binder.js';
import {
  CONSUMED_ENV,
  decodeHandoff,
  encodeHandoff,
  HANDOFF_ENV,
  HANDOFF_VERSION,
  type Handoff,
  PROTOCOL_VERSION,
  readWorkerEnv,
  withoutPreload,
  withPreload,
  workerEnv,
  workerIndexFromEnviron,
} from '../../src/restart/handoff.js';

const spec = parseBindUri('unix:///tmp/a,b:c.sock?mode=0600');
const listeners = [
  {
    spec,
    slot: 0,
    fd: 7,
    address: { family: 'unix', path: '/tmp/a,b:c.sock' },
    inherited: false,
    activated: false,
  },
  {
    spec: parseBindUri('tcp://127.0.0.1:0'),
    slot: 1,
    fd: 8,
    address: { family: 'IPv4', address: '127.0.0.1', port: 1 },
    inherited: true,
    activated: true,
  },
] as Listener[];

function sample(): Omit<Handoff, 'v'> {
  return {
    back: {
      file: '/usr/bin/node',
      args: ['/app/bin/nserve.js', 'start', 'app.mjs', '-w', '2'],
      cwd: '/srv',
      fds: [7, 8, 12],
    },
    listeners: handedListeners(listeners),
    workers: [
      {
        index: 0,
        pid: 123,
        generation: 4,
        fd: 12,
        directory: '/srv/releases/1',
        keys: ['tcp://127.0.0.1:0#0'],
        offered: [],
        draining: false,
        booted: true,
        protocol: PROTOCOL_VERSION,
      },
    ],
    generation: 4,
    restart: { count: 3, requestedAt: 1_700_000_000_000 },
    history: [{ id: 1, kind: 'hot', started: 'x', finished: null, outcome: 'in-progress', error: null }],
    startedAt: '2026-11-29T00:00:00.000Z',
    leaked: [{ fd: 40, kind: 'file', target: '/tmp/x' }],
    directory: '/srv/releases/1',
    configFile: null,
    optimistic: false,
  };
}

test('the hand-off round-trips everything that crosses the exec, URIs with any characters included', () => {
  const h = sample();
  const env = encodeHandoff(h);
  assert.deepEqual(Object.keys(env), [HANDOFF_ENV.handoff], 'one variable carries the whole hand-off');
  const decoded = decodeHandoff(env);
  assert.equal(decoded.kind, 'ok');
  assert.deepEqual(decoded.kind === 'ok' && decoded.handoff, { v: HANDOFF_VERSION, ...h });
  assert.equal(
    decoded.kind === 'ok' && decoded.handoff.listeners[1]!.activated,
    true,
    'socket activation survives',
  );
  assert.deepEqual(decodeHandoff({}), { kind: 'none' });
});

test('a hand-off of another version is foreign, and its way back is still read', () => {
  const env = {
    [HANDOFF_ENV.handoff]: JSON.stringify({ ...sample(), v: HANDOFF_VERSION + 1, listeners: 'new shape' }),
  };
  const decoded = decodeHandoff(env);
  assert.equal(decoded.kind, 'foreign');
  assert.match(
    decoded.kind === 'foreign' ? decoded.reason : '',
    /hand-off version 2 \(this nserve reads version 1\)/,
  );
  assert.deepEqual(decoded.kind === 'foreign' && decoded.back, sample().back);
});

test('malformed hand-offs are refused, never half-adopted', () => {
  const bad: [unknown, RegExp][] = [
    ['garbage{', /not JSON/],
    [
      { ...sample(), v: HANDOFF_VERSION, listeners: [{ fd: 1, slot: 0, uri: 'x', activated: false }] },
      /listeners/,
    ],
    [{ ...sample(), v: HANDOFF_VERSION, workers: [{ ...sample().workers[0], fd: -1 }] }, /workers/],
    [{ ...sample(), v: HANDOFF_VERSION, restart: { count: 'x' } }, /restart/],
    [{ ...sample(), v: HANDOFF_VERSION, workers: [{ ...sample().workers[0], protocol: 99 }] }, /protocol 99/],
    [{ ...sample(), v: HANDOFF_VERSION, totals: [1, 2] }, /totals/],
  ];
  for (const [value, re] of bad) {
    const decoded = decodeHandoff({
      [HANDOFF_ENV.handoff]: typeof value === 'string' ? value : JSON.stringify(value),
    });
    assert.equal(decoded.kind, 'foreign', String(re));
    assert.match(decoded.kind === 'foreign' ? decoded.reason : '', re);
  }
});

test('the hand-off variable is consumed: never passed on to workers or apps', () => {
  assert.ok(CONSUMED_ENV.includes(HANDOFF_ENV.handoff));
  assert.ok(CONSUMED_ENV.includes('LISTEN_FDS'));
});

test('a worker reads back the identity the master gave it', () => {
  const env = workerEnv({ index: 2, generation: 5, directory: '/srv/r', channelFd: 3 });
  assert.deepEqual(readWorkerEnv(env), {
    index: 2,
    generation: 5,
    directory: '/srv/r',
    channelFd: 3,
    protocol: PROTOCOL_VERSION,
  });
  assert.equal(readWorkerEnv({}), undefined);
  assert.equal(workerIndexFromEnviron(Object.entries(env).map(([k, v]) => `${k}=${v}`)), 2);
});

test('the hand-off carries the metrics listener and totals; a malformed metrics field is refused', () => {
  const withMetrics = {
    ...sample(),
    metrics: { listener: { fd: 9, uri: 'tcp://127.0.0.1:9100' }, totals: {} },
  };
  const ok = decodeHandoff(encodeHandoff(withMetrics));
  assert.equal(ok.kind, 'ok');
  assert.deepEqual(ok.kind === 'ok' ? ok.handoff.metrics : undefined, withMetrics.metrics);
  // Without it (an older nserve handing over): fine, the counters start from zero.
  assert.equal(decodeHandoff(encodeHandoff(sample())).kind, 'ok');
  for (const metrics of [
    { listener: { fd: 1, uri: 'tcp://127.0.0.1:9100' }, totals: {} },
    { listener: { fd: 9 }, totals: {} },
    { totals: [] },
    'x',
  ]) {
    const bad = decodeHandoff(encodeHandoff({ ...sample(), metrics } as unknown as Omit<Handoff, 'v'>));
    assert.equal(bad.kind, 'foreign', JSON.stringify(metrics));
    assert.match(bad.kind === 'foreign' ? bad.reason : '', /malformed hand-off: metrics/);
  }
});

test('the hand-off names the lock files kept open; a malformed locks field is refused', () => {
  const locks = [{ file: '/run/app.pid.lock', fd: 13 }];
  const ok = decodeHandoff(encodeHandoff({ ...sample(), locks }));
  assert.deepEqual(ok.kind === 'ok' ? ok.handoff.locks : undefined, locks);
  for (const bad of [[{ file: '/x', fd: 2 }], [{ fd: 13 }], { file: '/x', fd: 13 }, 'x']) {
    const out = decodeHandoff(encodeHandoff({ ...sample(), locks: bad } as unknown as Omit<Handoff, 'v'>));
    assert.match(out.kind === 'foreign' ? out.reason : '', /malformed hand-off: locks/, JSON.stringify(bad));
  }
});

test('a rollback pins its release in the hand-off; the deploy record is opaque and optional', () => {
  const withPin = {
    ...sample(),
    pinned: '/srv/releases/0',
    releases: { serving: { directory: '/srv/releases/1', version: 'b' }, previous: null },
  };
  const ok = decodeHandoff(encodeHandoff(withPin));
  assert.equal(ok.kind, 'ok');
  assert.equal(ok.kind === 'ok' ? ok.handoff.pinned : undefined, '/srv/releases/0');
  assert.deepEqual(ok.kind === 'ok' ? ok.handoff.releases : undefined, withPin.releases);
  for (const pinned of [42, 'relative/dir', '']) {
    const bad = decodeHandoff(encodeHandoff({ ...sample(), pinned } as unknown as Omit<Handoff, 'v'>));
    assert.equal(bad.kind, 'foreign', JSON.stringify(pinned));
    assert.match(bad.kind === 'foreign' ? bad.reason : '', /malformed hand-off: pinned/);
  }
  // A deploy record of a shape this image does not know is no reason to refuse the hand-off.
  assert.equal(decodeHandoff(encodeHandoff({ ...sample(), releases: 'x' })).kind, 'ok');
});

test('LD_PRELOAD: nserve_signals.so goes first for the exec, once, and comes out for the app', () => {
  const so = '/srv/app/node_modules/nserve/prebuilds/linux-x64/nserve_signals.so';
  assert.equal(withPreload(undefined, so), so);
  assert.equal(withPreload('/usr/lib/libjemalloc.so', so), `${so} /usr/lib/libjemalloc.so`);
  assert.equal(withPreload(`${so} /usr/lib/libjemalloc.so`, so), `${so} /usr/lib/libjemalloc.so`, 'once');
  assert.equal(withoutPreload(so, so), undefined);
  assert.equal(
    withoutPreload(`${so}:/usr/lib/libjemalloc.so`, so),
    '/usr/lib/libjemalloc.so',
    'colon-separated',
  );
  // Another release's copy of the object (a hot restart onto a new install) comes out too.
  assert.equal(withoutPreload('/old/release/nserve_signals.so /x.so', so), '/x.so');
  assert.equal(withoutPreload('', so), undefined);
});
