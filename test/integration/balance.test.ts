// --balance ip-hash: each client address sticks to one worker (a BPF program on each reuseport group),
// which is what socket.io's default client needs in cluster mode. Clients come from distinct loopback
// source addresses (127.0.0.2, 127.0.0.3, …), as clients on distinct hosts would.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as path from 'node:path';
import { after, type TestContext, test } from 'node:test';
import { io, type Socket } from 'socket.io-client';
import { reuseportSlot } from '../../src/native/index.js';
import { restart } from '../helpers/restart.js';
import {
  CLI,
  childPids,
  FIXTURES,
  freePort,
  isEvent,
  killAll,
  replacedWorkers,
  runNserve,
  type ServerProcess,
  serveApp,
  startCommand,
  until,
} from '../helpers/server.js';

after(killAll);

const SOURCES = Array.from({ length: 8 }, (_, i) => `127.0.0.${i + 2}`);
const REQUESTS_PER_SOURCE = 20;
const SOCKETIO_APP = path.join(FIXTURES, 'socketio/app.mjs');
const T = { timeout: 90_000 };

/** One GET on a new connection from `localAddress`; resolves with the answering PID. */
function pidFrom(port: number, localAddress: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.get(
      { host: '127.0.0.1', port, path: '/', agent: false, localAddress, timeout: 5000 },
      (res) => {
        let body = '';
        res.setEncoding('utf8').on('data', (c: string) => {
          body += c;
        });
        res.on('end', () => {
          try {
            resolve((JSON.parse(body) as { pid: number }).pid);
          } catch (err) {
            reject(err);
          }
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error(`GET from ${localAddress}: no answer within 5 s`)));
    req.on('error', reject);
  });
}

/** The PIDs that answered each source's requests, every request on a connection of its own. */
async function pidsBySource(port: number): Promise<Map<string, Set<number>>> {
  const out = new Map<string, Set<number>>();
  for (let round = 0; round < REQUESTS_PER_SOURCE; round++) {
    await Promise.all(
      SOURCES.map(async (source) => {
        const pid = await pidFrom(port, source);
        out.set(source, (out.get(source) ?? new Set()).add(pid));
      }),
    );
  }
  return out;
}

/** Every source on one worker, both workers used, and the worker following the slot the hash picks. */
async function assertSticky(port: number, workers: readonly number[]): Promise<void> {
  const seen = await pidsBySource(port);
  const pidOf = new Map<string, number>();
  for (const [source, pids] of seen) {
    assert.equal(pids.size, 1, `${source} reached one worker, not ${[...pids].join(', ')}`);
    pidOf.set(source, [...pids][0]!);
  }
  assert.deepEqual(new Set(pidOf.values()), new Set(workers), 'both workers got some addresses');
  // Addresses of one slot share a worker; addresses of two slots don't.
  for (const a of SOURCES) {
    for (const b of SOURCES) {
      assert.equal(
        pidOf.get(a) === pidOf.get(b),
        reuseportSlot(a, 2) === reuseportSlot(b, 2),
        `${a} and ${b}: same worker exactly when same slot`,
      );
    }
  }
}

test(
  '-w 2 --balance ip-hash: every new connection from one address reaches the same worker, across a hot restart',
  T,
  async (t) => {
    const { srv, port } = await serveApp(t, 'examples/hello.mjs', {
      workers: 2,
      args: ['--balance', 'ip-hash'],
    });
    const before = childPids(srv.pid);
    await assertSticky(port, before);
    // The slots and their group cross the exec; the new image attaches the program again.
    await restart(srv, 'hot', { deadlineMs: 30_000 });
    const after = await replacedWorkers(srv.pid, before, 2);
    await assertSticky(port, after);
    t.diagnostic(
      `${SOURCES.length} addresses x ${REQUESTS_PER_SOURCE} new connections, before and after the restart`,
    );
  },
);

test('-w 2 without --balance: the kernel spreads one address over both workers', T, async (t) => {
  const { port } = await serveApp(t, 'examples/hello.mjs', { workers: 2 });
  const seen = await pidsBySource(port);
  const spread = [...seen.values()].filter((pids) => pids.size > 1).length;
  // Each connection has its own source port, and the kernel hashes the 4-tuple.
  assert.ok(spread >= SOURCES.length / 2, `${spread} of ${SOURCES.length} addresses reached both workers`);
  t.diagnostic(`${spread} of ${SOURCES.length} addresses reached both workers`);
});

interface Client {
  source: string;
  socket: Socket;
  errors: string[];
  connects: number;
}

/**
 * A socket.io client on its default transports (polling, then the upgrade to WebSocket). `source`
 * pins its connections' local address through an agent, as a client on another host would have.
 */
function connectClient(t: TestContext, port: number, source: string | undefined): Client {
  const socket = io(`http://127.0.0.1:${port}`, {
    // engine.io-client types `agent` as string | boolean, but hands it to http.request and ws as an Agent.
    ...(source === undefined ? {} : { agent: new http.Agent({ localAddress: source }) as unknown as string }),
  });
  const client: Client = { source: source ?? '127.0.0.1', socket, errors: [], connects: 0 };
  socket.on('connect', () => {
    client.connects++;
  });
  socket.on('connect_error', (err) => client.errors.push(err.message));
  t.after(() => socket.close());
  return client;
}

/** `count` round trips (emit with ack); the PIDs that answered. */
async function exchange(client: Client, count: number): Promise<Set<number>> {
  const pids = new Set<number>();
  for (let i = 0; i < count; i++) {
    const reply = (await client.socket.timeout(5000).emitWithAck('whoami', `m${i}`)) as {
      pid: number;
      text: string;
    };
    assert.equal(reply.text, `m${i}`);
    pids.add(reply.pid);
  }
  return pids;
}

const upgraded = (c: Client): boolean =>
  c.socket.connected && c.socket.io.engine.transport.name === 'websocket';

/** The first loopback address whose hash lands on `slot` of 2. */
const sourceForSlot = (slot: number): string => SOURCES.find((s) => reuseportSlot(s, 2) === slot)!;

test(
  'socket.io, default client, -w 2 --balance ip-hash: connects, upgrades, exchanges, and reconnects through a phased restart',
  T,
  async (t) => {
    const { srv, port } = await serveApp(t, SOCKETIO_APP, {
      workers: 2,
      args: ['--balance', 'ip-hash', '--shutdown-timeout', '10'],
    });
    const oldWorkers = childPids(srv.pid);
    // One client from 127.0.0.1 and one for each slot, so that both workers hold sessions.
    const clients = [undefined, sourceForSlot(0), sourceForSlot(1)].map((s) => connectClient(t, port, s));
    await until('every client to connect and upgrade to WebSocket', () => clients.every(upgraded), 15_000);
    const before = new Map<Client, number>();
    for (const c of clients) {
      const pids = await exchange(c, 5);
      assert.equal(pids.size, 1, `${c.source}: one worker answered`);
      before.set(c, [...pids][0]!);
      assert.ok(oldWorkers.includes(before.get(c)!), `${c.source} is served by a worker`);
    }
    assert.equal(new Set(before.values()).size, 2, 'the clients are spread over both workers');

    await restart(srv, 'phased', { deadlineMs: 40_000 });
    const newWorkers = await replacedWorkers(srv.pid, oldWorkers, 2);
    // Each client lost its old worker's connection and reconnects on its own (default reconnection).
    await until(
      'every client to reconnect and upgrade again',
      () => clients.every((c) => c.connects >= 2 && upgraded(c)),
      20_000,
    );
    for (const c of clients) {
      const pids = await exchange(c, 5);
      assert.equal(pids.size, 1, `${c.source}: one worker answered after the restart`);
      const pid = [...pids][0]!;
      assert.ok(newWorkers.includes(pid), `${c.source} is served by a new worker (${pid})`);
    }
    for (const c of clients) assert.deepEqual(c.errors, [], `${c.source}: no connect_error (xhr poll error)`);
    t.diagnostic(
      `clients reconnected: ${clients.map((c) => `${c.source}: ${c.connects} connects`).join(', ')}`,
    );
  },
);

test(
  'socket.io, default client, -w 2 without --balance: polls land on both workers (xhr poll error)',
  T,
  async (t) => {
    const { port } = await serveApp(t, SOCKETIO_APP, { workers: 2 });
    const clients = SOURCES.slice(0, 6).map((s) => connectClient(t, port, s));
    const failing = await until(
      'a client to see its session unknown on the other worker',
      () => {
        const n = clients.filter((c) => c.errors.some((e) => /^xhr (poll|post) error$/.test(e))).length;
        return n > 0 ? n : undefined;
      },
      10_000,
    );
    t.diagnostic(`${failing} of ${clients.length} clients saw xhr poll/post errors within the first seconds`);
  },
);

async function expectUsageError(args: string[], pattern: RegExp): Promise<void> {
  const r = await runNserve(args);
  assert.equal(r.code, 2, `exit code for ${args.join(' ')}: stderr=${r.stderr}`);
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 1, `one line: ${r.stderr}`);
  assert.match(lines[0] ?? '', /^nserve: error: /);
  assert.match(lines[0] ?? '', pattern);
}

test('--balance ip-hash with a unix bind: one line, exit 2', () =>
  expectUsageError(
    [
      'start',
      'examples/hello.mjs',
      '-w',
      '2',
      '--balance',
      'ip-hash',
      '--bind',
      'unix:///tmp/nserve-balance.sock',
    ],
    /invalid --balance ip-hash: unix:\/\/\/tmp\/nserve-balance\.sock is a unix socket shared by all workers/,
  ));

test('--balance with a bad value: one line, exit 2', () =>
  expectUsageError(
    ['start', 'examples/hello.mjs', '-w', '2', '--balance', 'sticky'],
    /invalid --balance: "sticky": expected one of kernel, ip-hash/,
  ));

test('--balance ip-hash with fewer slots than workers: one line, exit 2', () =>
  expectUsageError(
    ['start', 'examples/hello.mjs', '-w', '3', '--slots', '2', '--balance', 'ip-hash'],
    /invalid --balance ip-hash: --slots 2 for 3 workers/,
  ));

test('--balance ip-hash with a socket-activated socket: one line, exit 2', {
  skip: !fs.existsSync('/usr/bin/systemd-socket-activate') && 'systemd-socket-activate is not installed',
  timeout: 30_000,
}, async (t) => {
  const port = await freePort();
  const srv: ServerProcess = startCommand('/usr/bin/systemd-socket-activate', [
    '-l',
    `127.0.0.1:${port}`,
    process.execPath,
    CLI,
    'start',
    'examples/hello.mjs',
    '-w',
    '2',
    '--balance',
    'ip-hash',
    '--bind',
    `tcp://127.0.0.1:${port}`,
  ]);
  t.after(() => srv.kill());
  await until('systemd-socket-activate to listen', () => /Listening on/.test(srv.stderr), 5000);
  // It execs nserve on the first connection, which nserve refuses to serve.
  const probe = net.connect({ host: '127.0.0.1', port });
  probe.on('error', () => {});
  t.after(() => probe.destroy());
  const exit = await srv.waitExit(15_000);
  assert.equal(exit.code, 2, srv.stderr);
  const line = srv.stderr.split('\n').find((l) => l.startsWith('nserve: error: '));
  assert.match(
    line ?? '',
    /invalid --balance ip-hash: tcp:\/\/127\.0\.0\.1:\d+ is a socket-activated socket/,
  );
});

/** socket.io's first request: a polling GET without a session id. Resolves with status and body. */
function pollingHandshake(port: number): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get(
      { host: '127.0.0.1', port, path: '/socket.io/?EIO=4&transport=polling', agent: false, timeout: 5000 },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => {
          body += c;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error('handshake timed out')));
    req.on('error', reject);
  });
}

test(
  'socket.io polling handshakes in cluster mode with --balance kernel: one warning per worker at most, naming ip-hash; served as usual',
  T,
  async (t) => {
    const { srv, port } = await serveApp(t, SOCKETIO_APP, { workers: 2 });
    for (let i = 0; i < 12; i++) {
      const r = await pollingHandshake(port);
      assert.equal(r.status, 200, r.body);
      assert.match(r.body, /^0\{"sid":/, 'the handshake is answered by socket.io');
    }
    const warnings = await until('a polling-handshake warning', () => {
      const w = srv.lines.filter((l) => isEvent(l, 'balance.polling-handshake'));
      return w.length > 0 ? w : undefined;
    });
    await new Promise((r) => setTimeout(r, 300));
    const again = srv.lines.filter((l) => isEvent(l, 'balance.polling-handshake'));
    const perPid = new Map<unknown, number>();
    for (const l of again) perPid.set(l.pid, (perPid.get(l.pid) ?? 0) + 1);
    assert.ok(
      [...perPid.values()].every((n) => n === 1),
      `once per worker, not per request: ${JSON.stringify([...perPid])}`,
    );
    assert.equal(warnings[0]!.event, 'balance.polling-handshake');
    assert.equal(warnings[0]!.level, 40, 'a warning');
  },
);

test('no polling-handshake warning with --balance ip-hash, nor in single mode', T, async (t) => {
  for (const options of [{ workers: 2, args: ['--balance', 'ip-hash'] }, {}]) {
    const { srv, port } = await serveApp(t, SOCKETIO_APP, options);
    for (let i = 0; i < 4; i++) assert.equal((await pollingHandshake(port)).status, 200);
    await new Promise((r) => setTimeout(r, 300));
    assert.ok(
      !srv.lines.some((l) => isEvent(l, 'balance.polling-handshake')),
      `no warning with ${JSON.stringify(options)}`,
    );
    await srv.kill();
  }
});
