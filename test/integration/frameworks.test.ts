// Real frameworks, unmodified: served in single mode and through a phased restart under load in cluster mode.
import assert from 'node:assert/strict';
import * as net from 'node:net';
import * as path from 'node:path';
import { after, test } from 'node:test';
import { assertNoFailedRequests, getJson, Load } from '../helpers/load.js';
import { now } from '../helpers/logged-process.js';
import { restart } from '../helpers/restart.js';
import { childPids, FIXTURES, killAll, ROOT, serveApp, until } from '../helpers/server.js';

after(killAll);

const FRAMEWORKS = ['express', 'fastify', 'koa', 'hono', 'hono-node-server'];

for (const name of FRAMEWORKS) {
  const app = path.join(FIXTURES, 'frameworks', `${name}.mjs`);

  test(`${name}: single mode serves it`, async (t) => {
    const { srv, port } = await serveApp(t, app);
    const res = await getJson(port, '/hello');
    assert.equal(res.status, 200);
    assert.equal(res.body.framework, name);
    assert.equal(res.body.pid, srv.pid);
  });

  test(`${name}: -w 2 phased restart under load, zero failed requests`, async (t) => {
    const { srv, port } = await serveApp(t, app, { workers: 2 });
    const before = childPids(srv.pid);
    const load = new Load({ port, keepAlive: 3, newConnection: 2, post: 1 });
    await load.warmedUp();
    await restart(srv, 'phased', { deadlineMs: 30_000 });
    await until('old workers gone', () => childPids(srv.pid).every((p) => !before.includes(p)));
    await load.roundsSince(now(), 3);
    const result = await load.stop();
    assertNoFailedRequests(result);
    assert.ok(result.ok > 50);
    assert.equal((await getJson(port)).body.framework, name);
  });
}

for (const name of ['express', 'fastify']) {
  test(`${name} (listens itself): hot restart in single mode, the boot check captures its listen too`, async (t) => {
    const { srv, port } = await serveApp(t, path.join(FIXTURES, 'frameworks', `${name}.mjs`));
    const load = new Load({ port, keepAlive: 2, newConnection: 2 });
    await restart(srv, 'hot', { deadlineMs: 15_000 });
    const result = await load.stop();
    assertNoFailedRequests(result);
    assert.equal((await getJson(port)).body.framework, name);
  });
}

for (const workers of ['0', '2']) {
  test(`listen-compat forwards HTTP upgrades (WebSocket-style) to the app's own server, -w ${workers}`, async (t) => {
    const { port } = await serveApp(t, path.join(FIXTURES, 'frameworks', 'upgrade-echo.mjs'), {
      workers: Number(workers),
    });
    const sock = net.connect(port, '127.0.0.1');
    t.after(() => sock.destroy());
    let got = '';
    sock.setEncoding('utf8');
    sock.on('data', (c: string) => {
      got += c;
    });
    sock.write('GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n');
    await until('the 101', () => got.includes('\r\n\r\n'), 5000);
    assert.match(got, /^HTTP\/1\.1 101 Switching Protocols/);
    sock.write('ping over the upgraded connection');
    await until('the echo', () => got.endsWith('ping over the upgraded connection'), 5000);
  });
}

test('express, the app exported instead of listening (examples/express-app.mjs), -w 2: its routes answer', async (t) => {
  const { port } = await serveApp(t, path.join(ROOT, 'examples/express-app.mjs'), { workers: 2 });
  assert.deepEqual((await getJson(port, '/users/42')).body, { id: '42' });
  assert.equal((await getJson(port, '/')).body.hello, 'express');
});
