// attachReuseportCbpf: the kernel picks the socket the program names, by source address, in the order
// the sockets joined the group; reuseportSlot computes the same choice in JS.
import assert from 'node:assert/strict';
import net from 'node:net';
import { networkInterfaces } from 'node:os';
import { describe, test } from 'node:test';
import * as native from '../../src/native/index.js';
import { deadline } from './helpers.js';

const T = { timeout: 30_000 };

interface Group {
  port: number;
  fds: number[];
  /** Socket index (join order) that accepted each connection, by client address. */
  accepted: Map<string, number[]>;
  close(): Promise<void>;
}

/** `size` reuseport sockets on host:0 (one port), each served by a net.Server that notes the client. */
async function openGroup(family: 'tcp4' | 'tcp6', host: string, size: number): Promise<Group> {
  const fds: number[] = [];
  let port = 0;
  for (let i = 0; i < size; i++) {
    const fd = native.listen({ family, host, port, reusePort: true });
    const address = native.localAddress(fd);
    if (address.family === 'unix') throw new Error('a TCP listener has no path');
    port = address.port;
    fds.push(fd);
  }
  const accepted = new Map<string, number[]>();
  const servers = await Promise.all(
    fds.map(
      (fd, index) =>
        new Promise<net.Server>((resolve) => {
          const server = net.createServer((socket) => {
            const from = socket.remoteAddress ?? '?';
            accepted.set(from, [...(accepted.get(from) ?? []), index]);
            socket.end('x');
          });
          server.listen({ fd }, () => resolve(server));
        }),
    ),
  );
  return {
    port,
    fds,
    accepted,
    // Closing each server closes its fd.
    close: () => Promise.all(servers.map((s) => new Promise<void>((r) => s.close(() => r())))).then(() => {}),
  };
}

function connectOnce(host: string, port: number, localAddress: string): Promise<void> {
  const done = new Promise<void>((resolve, reject) => {
    const socket = net.connect({ host, port, localAddress });
    socket.on('data', () => {});
    socket.on('close', () => resolve());
    socket.on('error', reject);
  });
  return deadline(done, 5000, `a connection from ${localAddress} to ${host}:${port}`);
}

const LOOPBACK_SOURCES = Array.from({ length: 12 }, (_, i) => `127.0.0.${i + 2}`);

describe('reuseport balancing', () => {
  test(
    'ip-hash on IPv4: every connection from one address reaches the socket reuseportSlot names',
    T,
    async (t) => {
      const size = 5;
      const group = await openGroup('tcp4', '127.0.0.1', size);
      t.after(() => group.close());
      native.attachReuseportCbpf(group.fds[2]!, size); // any socket of the group carries the program
      for (const source of LOOPBACK_SOURCES) {
        for (let i = 0; i < 8; i++) await connectOnce('127.0.0.1', group.port, source);
      }
      for (const source of LOOPBACK_SOURCES) {
        const want = native.reuseportSlot(source, size);
        assert.deepEqual(group.accepted.get(source), new Array(8).fill(want), `connections from ${source}`);
      }
      // Neighbouring addresses spread: 12 addresses over 5 sockets use more than two of them.
      const used = new Set(LOOPBACK_SOURCES.map((s) => native.reuseportSlot(s, size)));
      assert.ok(used.size >= 3, `sockets used: ${[...used].join(', ')}`);
    },
  );

  test(
    'without a program the kernel spreads one address over the group; detach restores that',
    T,
    async (t) => {
      const size = 4;
      const group = await openGroup('tcp4', '127.0.0.1', size);
      t.after(() => group.close());
      assert.equal(native.detachReuseportBpf(group.fds[0]!), false, 'no program yet');
      native.attachReuseportCbpf(group.fds[0]!, size);
      assert.equal(native.detachReuseportBpf(group.fds[1]!), true, 'the program belongs to the group');
      for (let i = 0; i < 40; i++) await connectOnce('127.0.0.1', group.port, '127.0.0.2');
      const seen = new Set(group.accepted.get('127.0.0.2'));
      // Each connection has its own source port, so the kernel's 4-tuple hash spreads them.
      assert.ok(seen.size > 1, `40 connections from one address all reached socket ${[...seen].join(', ')}`);
    },
  );

  test('ip-hash on IPv6 hashes the IPv6 source address', T, async (t) => {
    // Two or more local IPv6 addresses to connect from (::1 and any global address of this host).
    const sources = [
      '::1',
      ...Object.values(networkInterfaces())
        .flat()
        .filter((a) => a !== undefined && a.family === 'IPv6' && !a.internal && a.scopeid === 0)
        .map((a) => a!.address),
    ];
    try {
      native.close(native.listen({ family: 'tcp6', host: '::1', port: 0 }));
    } catch {
      t.skip('no IPv6 on this host');
      return;
    }
    const size = 16; // a chance match for every address is 1 in 16 per address
    const group = await openGroup('tcp6', '::', size);
    t.after(() => group.close());
    native.attachReuseportCbpf(group.fds[0]!, size);
    for (const source of sources) {
      for (let i = 0; i < 6; i++) await connectOnce(source, group.port, source);
    }
    for (const source of sources) {
      const want = native.reuseportSlot(source, size);
      assert.deepEqual(group.accepted.get(source), new Array(6).fill(want), `connections from ${source}`);
    }
    t.diagnostic(`IPv6 sources checked: ${sources.join(', ')}`);
  });

  test(
    'errors: a socket without SO_REUSEPORT (EINVAL), a unix socket (EAFNOSUPPORT), bad arguments',
    T,
    () => {
      const plain = native.listen({ family: 'tcp4', host: '127.0.0.1', port: 0 });
      try {
        assert.throws(() => native.attachReuseportCbpf(plain, 2), { code: 'EINVAL', syscall: 'setsockopt' });
        assert.throws(() => native.detachReuseportBpf(plain), { code: 'EINVAL', syscall: 'setsockopt' });
      } finally {
        native.close(plain);
      }
      const [a, b] = native.socketpair();
      try {
        assert.throws(() => native.attachReuseportCbpf(a, 2), {
          code: 'EAFNOSUPPORT',
          syscall: 'setsockopt',
        });
      } finally {
        native.close(a);
        native.close(b);
      }
      assert.throws(() => native.attachReuseportCbpf(3, 0), { code: 'ERR_OUT_OF_RANGE' });
      assert.throws(() => native.attachReuseportCbpf(3, 1.5), { code: 'ERR_OUT_OF_RANGE' });
      assert.throws(() => native.attachReuseportCbpf('3' as unknown as number, 2), {
        code: 'ERR_INVALID_ARG_TYPE',
      });
      assert.throws(() => native.reuseportSlot('example.com', 2), { code: 'ERR_INVALID_ARG_VALUE' });
    },
  );

  test('reuseportSlot reads IPv6 text forms alike', () => {
    assert.equal(native.reuseportSlot('0:0:0:0:0:0:0:1', 97), native.reuseportSlot('::1', 97));
    assert.equal(native.reuseportSlot('::ffff:1.2.3.4', 97), native.reuseportSlot('::ffff:102:304', 97));
    assert.equal(native.reuseportSlot('fd00::2', 1), 0);
  });
});
