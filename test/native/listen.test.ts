import assert from 'node:assert/strict';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import * as native from '../../src/native/index.js';
import { Child, deadline, tempDir } from './helpers.js';

const O_NONBLOCK = 0o4000;
const T = { timeout: 20_000 };

function flagsOf(fd: number): number {
  const entry = native.listFdsRaw().find((f) => f.fd === fd);
  assert.ok(entry, `fd ${fd} is listed`);
  return entry.flags;
}

/** Serves `fd` with a net.Server that writes `reply` and closes; returns the server. */
async function serveFd(fd: number, reply: string): Promise<net.Server> {
  const server = net.createServer((socket) => socket.end(reply));
  await deadline(
    new Promise<void>((resolve) => server.listen({ fd }, resolve)),
    5000,
    'net.Server on the fd',
  );
  return server;
}

function fetchText(connect: net.NetConnectOpts): Promise<string> {
  const done = new Promise<string>((resolve, reject) => {
    const socket = net.connect(connect);
    let text = '';
    socket.setEncoding('utf8').on('data', (chunk: string) => {
      text += chunk;
    });
    socket.on('end', () => resolve(text));
    socket.on('error', reject);
  });
  return deadline(done, 5000, `a reply from ${JSON.stringify(connect)}`);
}

function closeServer(server: net.Server): Promise<void> {
  return deadline(new Promise<void>((resolve) => server.close(() => resolve())), 5000, 'server close');
}

async function hasIPv6(): Promise<boolean> {
  try {
    native.close(native.listen({ family: 'tcp6', host: '::1', port: 0 }));
    return true;
  } catch {
    return false;
  }
}

describe('listen tcp', () => {
  test('tcp4 on port 0: a real, close-on-exec, non-blocking listener that Node can serve', T, async () => {
    const fd = native.listen({ family: 'tcp4', host: '127.0.0.1', port: 0 });
    const address = native.localAddress(fd);
    assert.ok(address.family === 'IPv4' && address.port > 0);
    assert.equal(address.address, '127.0.0.1');
    assert.equal(native.getCloexec(fd), true);
    assert.equal(flagsOf(fd) & O_NONBLOCK, O_NONBLOCK);

    const server = await serveFd(fd, 'hello tcp4');
    try {
      assert.equal(await fetchText({ host: '127.0.0.1', port: address.port }), 'hello tcp4');
    } finally {
      await closeServer(server); // closes fd
    }
  });

  test('reusePort lets two sockets bind one port; without it the second gets EADDRINUSE', T, () => {
    const a = native.listen({ family: 'tcp4', host: '127.0.0.1', port: 0, reusePort: true });
    const address = native.localAddress(a);
    assert.ok(address.family === 'IPv4');
    const port = address.port;
    const b = native.listen({ family: 'tcp4', host: '127.0.0.1', port, reusePort: true });
    try {
      assert.deepEqual(native.localAddress(b), address);
      assert.throws(
        () => native.listen({ family: 'tcp4', host: '127.0.0.1', port }),
        (err: NodeJS.ErrnoException & { address?: string; port?: number }) => {
          assert.ok(err instanceof Error);
          assert.equal(err.code, 'EADDRINUSE');
          assert.equal(err.syscall, 'bind');
          assert.equal(err.errno, -98);
          assert.ok((err.errno ?? 0) < 0);
          assert.equal(err.address, '127.0.0.1');
          assert.equal(err.port, port);
          assert.equal(err.message, `bind EADDRINUSE 127.0.0.1:${port}`);
          return true;
        },
      );
    } finally {
      native.close(a);
      native.close(b);
    }
  });

  test('backlog is accepted and the default works', T, () => {
    native.close(native.listen({ family: 'tcp4', host: '127.0.0.1', port: 0, backlog: 1 }));
    native.close(native.listen({ family: 'tcp4', host: '0.0.0.0', port: 0 }));
  });

  test('listenQueue: the accept queue and its limit; null for what is not a TCP listener', T, async (t) => {
    const fd = native.listen({ family: 'tcp4', host: '127.0.0.1', port: 0, backlog: 7 });
    t.after(() => native.close(fd));
    assert.deepEqual(native.listenQueue(fd), { depth: 0, limit: 7 });
    const address = native.localAddress(fd);
    assert.ok(address.family === 'IPv4');
    // Completed by the kernel, never accepted: they wait in the queue.
    const clients = [1, 2, 3].map(() => net.connect({ host: '127.0.0.1', port: address.port }));
    t.after(() => {
      for (const c of clients) c.destroy();
    });
    await deadline(
      Promise.all(clients.map((c) => new Promise((resolve) => c.once('connect', resolve)))),
      5000,
      'three connections',
    );
    assert.deepEqual(native.listenQueue(fd), { depth: 3, limit: 7 });
    const dir = tempDir(t);
    const unix = native.listen({ family: 'unix', path: join(dir, 's.sock') });
    t.after(() => native.close(unix));
    assert.equal(native.listenQueue(unix), null);
    assert.throws(() => native.listenQueue(-1), { code: 'ERR_OUT_OF_RANGE' });
  });

  test('tcp6 on ::1, and V6ONLY leaves the IPv4 port free', T, async (t) => {
    if (!(await hasIPv6())) return t.skip('no IPv6 on this machine');
    const fd = native.listen({ family: 'tcp6', host: '::1', port: 0 });
    const address = native.localAddress(fd);
    assert.ok(address.family === 'IPv6');
    assert.equal(address.address, '::1');
    const server = await serveFd(fd, 'hello tcp6');
    try {
      assert.equal(await fetchText({ host: '::1', port: address.port }), 'hello tcp6');
    } finally {
      await closeServer(server);
    }

    // Without IPV6_V6ONLY, [::]:P would also own 0.0.0.0:P.
    const any6 = native.listen({ family: 'tcp6', host: '::', port: 0 });
    const p = native.localAddress(any6);
    assert.ok(p.family === 'IPv6');
    const any4 = native.listen({ family: 'tcp4', host: '0.0.0.0', port: p.port });
    native.close(any4);
    native.close(any6);
  });

  test('bad options are TypeError/RangeError before any syscall', T, () => {
    assert.throws(() => native.listen({ family: 'tcp4', host: 'localhost', port: 0 }), {
      name: 'TypeError',
      code: 'ERR_INVALID_ARG_VALUE',
    });
    assert.throws(() => native.listen({ family: 'tcp6', host: '127.0.0.1', port: 0 }), { name: 'TypeError' });
    assert.throws(() => native.listen({ family: 'tcp4', host: '127.0.0.1', port: 70000 }), {
      name: 'RangeError',
      code: 'ERR_OUT_OF_RANGE',
    });
    assert.throws(
      () => native.listen({ family: 'tcp4', host: '127.0.0.1', port: '80' as unknown as number }),
      { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' },
    );
    assert.throws(() => native.listen({ family: 'udp' } as unknown as native.ListenOptions), {
      name: 'TypeError',
    });
    assert.throws(() => native.listen(null as unknown as native.ListenOptions), { name: 'TypeError' });
    assert.throws(() => native.localAddress(-1), { name: 'RangeError' });
  });
});

describe('listen unix', () => {
  test('a stale socket file is removed and rebound', T, async (t) => {
    const path = join(tempDir(t), 'stale.sock');
    native.close(native.listen({ family: 'unix', path }));
    assert.ok(statSync(path).isSocket(), 'closing a listener leaves its file');

    const fd = native.listen({ family: 'unix', path });
    assert.deepEqual(native.localAddress(fd), { family: 'unix', path });
    const server = await serveFd(fd, 'hello unix');
    try {
      assert.equal(await fetchText({ path }), 'hello unix');
    } finally {
      await closeServer(server);
    }
  });

  test('a live socket is EADDRINUSE with the path; so is a file that is not a socket', T, (t) => {
    const dir = tempDir(t);
    const path = join(dir, 'live.sock');
    const live = native.listen({ family: 'unix', path });
    try {
      assert.throws(() => native.listen({ family: 'unix', path }), {
        code: 'EADDRINUSE',
        errno: -98,
        syscall: 'bind',
        path,
        message: `bind EADDRINUSE ${path}`,
      });
      assert.ok(statSync(path).isSocket(), 'the live socket file is left alone');
    } finally {
      native.close(live);
    }

    const file = join(dir, 'plain-file');
    writeFileSync(file, 'keep me');
    assert.throws(() => native.listen({ family: 'unix', path: file }), { code: 'EADDRINUSE', path: file });
    assert.equal(readFileSync(file, 'utf8'), 'keep me');
  });

  test('mode is applied to the socket file', T, (t) => {
    const dir = tempDir(t);
    for (const mode of [0o600, 0o666]) {
      const path = join(dir, `mode-${mode.toString(8)}.sock`);
      const fd = native.listen({ family: 'unix', path, mode });
      try {
        assert.equal(statSync(path).mode & 0o777, mode);
      } finally {
        native.close(fd);
      }
    }
  });

  test('abstract names ("@name") have no file and read back with "@"', T, async (t) => {
    const path = `@nserve-test-${process.pid}-${Date.now()}`;
    const fd = native.listen({ family: 'unix', path });
    assert.deepEqual(native.localAddress(fd), { family: 'unix', path });
    assert.throws(() => native.listen({ family: 'unix', path }), { code: 'EADDRINUSE', path });
    const server = await serveFd(fd, 'hello abstract');
    try {
      // Node 20's net pads abstract names to the whole sun_path, so it cannot
      // reach an exact-length name (as systemd and we use): python can.
      const script =
        'import socket,sys\ns=socket.socket(socket.AF_UNIX)\ns.connect("\\0"+sys.argv[1])\nprint(s.recv(99).decode())';
      const client = new Child(t, 'python3', ['-c', script, path.slice(1)]);
      assert.equal(await client.line('the reply', (l) => l.length > 0), 'hello abstract');
    } finally {
      await closeServer(server);
    }
  });

  test('a path too long for sun_path is ENAMETOOLONG', T, (t) => {
    const path = join(tempDir(t), 'x'.repeat(120));
    assert.throws(() => native.listen({ family: 'unix', path }), {
      code: 'ENAMETOOLONG',
      syscall: 'bind',
      path,
    });
  });

  test('a missing directory is ENOENT from bind', T, (t) => {
    const path = join(tempDir(t), 'missing', 'x.sock');
    assert.throws(() => native.listen({ family: 'unix', path }), { code: 'ENOENT', syscall: 'bind', path });
  });
});
