// --balance: the config option, its refusals, and what the binder does with it on real sockets.
import assert from 'node:assert/strict';
import net from 'node:net';
import * as os from 'node:os';
import { test } from 'node:test';
import { describeConfig } from '../../src/config/describe.js';
import { buildConfig, type CliOptions, type UserConfig } from '../../src/config/index.js';
import {
  type BindSpec,
  closeListeners,
  handedListeners,
  type Listener,
  openListeners,
} from '../../src/listen/binder.js';
import * as native from '../../src/native/index.js';

const cwd = os.tmpdir();
const build = (cli: CliOptions = {}, file: UserConfig = {}) =>
  buildConfig({
    app: 'app.mjs',
    cli,
    file,
    cwd,
    found: { file: '/x/nserve.config.mjs', source: 'flag' },
    env: {},
  });

function rejects(fn: () => unknown, pattern: RegExp, code = 'ERR_NSERVE_INVALID_CONFIG'): void {
  assert.throws(fn, (err: Error & { code?: string; usage?: boolean }) => {
    assert.equal(err.code, code, err.message);
    assert.equal(err.usage, true, 'a usage error: the CLI prints it and exits 2');
    assert.match(err.message, pattern);
    assert.ok(!err.message.includes('\n'), 'one line');
    return true;
  });
}

test('balance: kernel by default; ip-hash from the flag or the config file, set on every TCP bind', () => {
  const plain = build({ workers: '2', bind: ['tcp://127.0.0.1:0'] });
  assert.equal(plain.balance, 'kernel');
  assert.equal((plain.binds[0] as { balance?: string }).balance, undefined);
  assert.deepEqual(describeConfig(plain).balance, { value: 'kernel', source: 'default' });

  const flag = build({ workers: '2', balance: 'ip-hash', bind: ['tcp://127.0.0.1:0', 'tcp://[::1]:0'] });
  assert.equal(flag.balance, 'ip-hash');
  assert.deepEqual(
    flag.binds.map((b) => (b.kind === 'tcp' ? b.balance : undefined)),
    ['ip-hash', 'ip-hash'],
  );
  assert.deepEqual(describeConfig(flag).balance, { value: 'ip-hash', source: 'flag' });
  assert.equal(build({ workers: '2' }, { balance: 'ip-hash' }).balance, 'ip-hash');
  assert.equal(build({ workers: '2', balance: 'kernel' }, { balance: 'ip-hash' }).balance, 'kernel');
  // Single mode: one process serves every client, so ip-hash has nothing to do, and is accepted.
  assert.equal(build({ balance: 'ip-hash' }).balance, 'ip-hash');
});

test('balance: a bad value names the setting, the value and what is valid', () => {
  rejects(
    () => build({ balance: 'round-robin' }),
    /^invalid --balance: "round-robin": expected one of kernel, ip-hash$/,
  );
  rejects(
    () => build({}, { balance: 7 as unknown as 'kernel' }),
    /^invalid config key balance: 7: expected one of kernel, ip-hash$/,
  );
});

test('balance: ip-hash is refused with a unix bind, and with fewer slots than workers', () => {
  rejects(
    () => build({ workers: '2', balance: 'ip-hash', bind: ['tcp://127.0.0.1:0', 'unix:///tmp/x.sock'] }),
    /^invalid --balance ip-hash: unix:\/\/\/tmp\/x\.sock is a unix socket shared by all workers/,
  );
  rejects(
    () => build({}, { balance: 'ip-hash', bind: 'unix:///tmp/x.sock' }),
    /^invalid config key balance ip-hash: unix:/,
  );
  rejects(
    () => build({ workers: '4', slots: '2', balance: 'ip-hash' }),
    /^invalid --balance ip-hash: --slots 2 for 4 workers: workers would share slots/,
  );
  // More slots than workers is fine: each slot is still served by one worker.
  assert.equal(build({ workers: '2', slots: '6', balance: 'ip-hash' }).slots, 6);
});

const tcp = (balance?: 'ip-hash'): BindSpec => ({
  kind: 'tcp',
  uri: 'tcp://127.0.0.1:0',
  family: 'tcp4',
  host: '127.0.0.1',
  port: 0,
  ...(balance === undefined ? {} : { balance }),
});

/** The slot that accepts each of `count` connections from `source`. */
async function slotsReached(
  listeners: readonly Listener[],
  source: string,
  count: number,
): Promise<number[]> {
  const reached: number[] = [];
  const servers = await Promise.all(
    listeners.map(
      (l) =>
        new Promise<net.Server>((resolve) => {
          // A copy: closing the server must not close the listener (the binder owns it).
          const server = net.createServer((socket) => {
            reached.push(l.slot);
            socket.end();
          });
          server.listen({ fd: native.dup(l.fd) }, () => resolve(server));
        }),
    ),
  );
  try {
    const address = listeners[0]!.address;
    assert.ok(address.family === 'IPv4');
    for (let i = 0; i < count; i++) {
      await new Promise<void>((resolve, reject) => {
        const socket = net.connect({ host: '127.0.0.1', port: address.port, localAddress: source });
        socket.resume().on('close', () => resolve());
        socket.on('error', reject);
      });
    }
  } finally {
    await Promise.all(servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
  }
  return reached;
}

test('openListeners with ip-hash: each client address reaches the slot reuseportSlot names', async (t) => {
  const slots = 3;
  const { listeners } = openListeners([tcp('ip-hash')], {
    slots,
    reusePort: true,
    backlog: 64,
    inherited: [],
  });
  t.after(() => closeListeners(listeners, { unlink: false }));
  for (const source of ['127.0.0.2', '127.0.0.3', '127.0.0.4', '127.0.0.5']) {
    const want = native.reuseportSlot(source, slots);
    assert.deepEqual(await slotsReached(listeners, source, 6), new Array(6).fill(want), source);
  }
});

test('a hot restart with kernel balance detaches the program the previous image attached', (t) => {
  const first = openListeners([tcp('ip-hash')], { slots: 2, reusePort: true, backlog: 64, inherited: [] });
  t.after(() => closeListeners(first.listeners, { unlink: false }));
  // What the hand-off gives the new image, which binds the same URI.
  const inherited = handedListeners(first.listeners);
  const again = openListeners([tcp()], { slots: 2, reusePort: true, backlog: 64, inherited });
  assert.deepEqual(
    again.listeners.map((l) => l.inherited),
    [true, true],
  );
  assert.equal(native.detachReuseportBpf(first.listeners[0]!.fd), false, 'no program left on the group');
  // And ip-hash again attaches it.
  openListeners([tcp('ip-hash')], { slots: 2, reusePort: true, backlog: 64, inherited });
  assert.equal(native.detachReuseportBpf(first.listeners[0]!.fd), true);
});

test('ip-hash with a socket-activated socket is refused before anything is bound', (t) => {
  const fd = native.listen({ family: 'tcp4', host: '127.0.0.1', port: 0 });
  t.after(() => native.close(fd));
  const address = native.localAddress(fd);
  assert.ok(address.family === 'IPv4');
  const uri = `tcp://127.0.0.1:${address.port}`;
  rejects(
    () =>
      openListeners([tcp('ip-hash')], {
        slots: 2,
        reusePort: true,
        backlog: 64,
        inherited: [{ fd, slot: 0, uri, activated: true }],
      }),
    /^invalid --balance ip-hash: tcp:\/\/127\.0\.0\.1:\d+ is a socket-activated socket shared by all workers/,
  );
});

test('single mode (no reuseport) leaves ip-hash aside: one process serves every client', (t) => {
  const { listeners } = openListeners([tcp('ip-hash')], {
    slots: 1,
    reusePort: false,
    backlog: 64,
    inherited: [],
  });
  t.after(() => closeListeners(listeners, { unlink: false }));
  assert.equal(listeners.length, 1);
});
