// A graceful stop never leaves a connection hanging and then resets it: connections queued when the stop
// begins are served; later ones are served or refused at once. (Closing a listener resets what is queued
// on it, so nserve closes each listener only once its accept queue is empty.)
import assert from 'node:assert/strict';
import * as net from 'node:net';
import { after, test } from 'node:test';
import { getJson } from '../helpers/load.js';
import { makeReleases } from '../helpers/releases.js';
import { childPids, killAll, serveCurrent } from '../helpers/server.js';

after(killAll);

type Outcome = { kind: 'served' | 'refused' | 'reset' | 'hung' | 'empty'; ms: number };

/** One GET on a new connection; how it ended and how long it took. */
function attempt(port: number, path = '/', timeoutMs = 5000): Promise<Outcome> {
  const started = Date.now();
  return new Promise((resolve) => {
    const sock = net.connect({ host: '127.0.0.1', port });
    let data = '';
    let done = false;
    const end = (kind: Outcome['kind']): void => {
      if (done) return;
      done = true;
      sock.destroy();
      resolve({ kind, ms: Date.now() - started });
    };
    sock.setTimeout(timeoutMs, () => end('hung'));
    sock.on('connect', () => sock.write(`GET ${path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`));
    sock.on('data', (c: Buffer) => {
      data += c.toString('latin1');
    });
    sock.on('error', (err: NodeJS.ErrnoException) => end(err.code === 'ECONNREFUSED' ? 'refused' : 'reset'));
    sock.on('close', () => end(/^HTTP\/1\.1 200/.test(data) ? 'served' : 'empty'));
  });
}

for (const workers of [0, 2]) {
  test(`-w ${workers}: connections during a graceful stop are served or refused at once, never reset after hanging`, {
    timeout: 60_000,
  }, async (t) => {
    const root = makeReleases(t, { v1: {} }, 'v1');
    const { srv, port } = await serveCurrent(t, root, { workers });
    await getJson(port);
    // A slow request keeps the drain going for about a second.
    const slow = attempt(port, '/slow');
    await new Promise((r) => setTimeout(r, 100));
    srv.signal('SIGTERM');
    const outcomes: Outcome[] = [];
    const deadline = Date.now() + 1500;
    while (Date.now() < deadline) outcomes.push(await attempt(port, '/', 3000));
    assert.equal((await slow).kind, 'served', 'the request in flight finished');
    assert.deepEqual(await srv.waitExit(15000), { code: 0, signal: null });
    const bad = outcomes.filter((o) => o.kind !== 'served' && !(o.kind === 'refused' && o.ms < 200));
    assert.deepEqual(bad, [], `every attempt served or refused at once (${outcomes.length} attempts)`);
    assert.ok(
      outcomes.some((o) => o.kind === 'refused'),
      'once the listener closed, new connections are refused',
    );
  });

  test(`-w ${workers}: connections queued when the stop begins are served`, {
    timeout: 60_000,
  }, async (t) => {
    const root = makeReleases(t, { v1: {} }, 'v1');
    const { srv, port } = await serveCurrent(t, root, { workers });
    await getJson(port);
    // Freeze every process that accepts, so that new connections wait in the accept queues.
    const acceptors = workers === 0 ? [srv.pid] : childPids(srv.pid);
    for (const pid of acceptors) process.kill(pid, 'SIGSTOP');
    const queued = Array.from({ length: 20 }, () => attempt(port, '/', 10000));
    await new Promise((r) => setTimeout(r, 300));
    srv.signal('SIGTERM');
    await new Promise((r) => setTimeout(r, 200));
    for (const pid of acceptors) process.kill(pid, 'SIGCONT');
    const outcomes = await Promise.all(queued);
    assert.deepEqual(
      outcomes.map((o) => o.kind),
      outcomes.map(() => 'served'),
      'every queued connection was served',
    );
    assert.deepEqual(await srv.waitExit(15000), { code: 0, signal: null });
  });
}
