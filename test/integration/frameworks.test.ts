// Real frameworks, unmodified: served in single mode and through a phased restart under load in cluster mode.
import assert from 'node:assert/strict';
import * as net from 'node:net';
import * as path from 'node:path';
import { after, test } from 'node:test';
import { assertNoFailedRequests, getJson, Load } from '../helpers/load.js';
import { childPids, FIXTURES, killAll, startNserve, until } from '../helpers/server.js';

after(killAll);

const FRAMEWORKS = ['express', 'fastify', 'koa', 'hono', 'hono-node-server'];

for (const name of FRAMEWORKS) {
  const app = path.join(FIXTURES, 'frameworks', `${name}.mjs`);

  test(`${name}: single mode serves it`, async (t) => {
    const srv = startNserve(['start', app, '--bind', 'tcp://127.0.0.1:0']);
    t.after(() => srv.kill());
    const port = await srv.port();
    const res = await getJson(port, '/hello');
    assert.equal(res.status, 200);
    assert.equal(res.body.framework, name);
    assert.equal(res.body.pid, srv.pid);
  });

  test(`${name}: -w 2 phased restart under load, zero failed requests`, async (t) => {
    const srv = startNserve(['start', app, '-w', '2', '--bind', 'tcp://127.0.0.1:0']);
    t.after(() => srv.kill());
    const port = await srv.port(20000);
    const before = childPids(srv.pid);
    const load = new Load({ port, keepAlive: 3, newConnection: 2, post16k: 1 });
    await new Promise((r) => setTimeout(r, 200));
    const mark = srv.lines.length;
    srv.signal('SIGUSR1');
    await srv.waitForMsg('phased restart: done', 30000, mark);
    await until('old workers gone', () => childPids(srv.pid).every((p) => !before.includes(p)));
    await new Promise((r) => setTimeout(r, 200));
    const result = await load.stop();
    assertNoFailedRequests(result);
    assert.ok(result.ok > 50);
    assert.equal((await getJson(port)).body.framework, name);
  });
}

for (const name of ['express', 'fastify']) {
  test(`${name} (listens itself): hot restart in single mode, the boot check captures its listen too`, async (t) => {
    const srv = startNserve([
      'start',
      path.join(FIXTURES, 'frameworks', `${name}.mjs`),
      '--bind',
      'tcp://127.0.0.1:0',
    ]);
    t.after(() => srv.kill());
    const port = await srv.port();
    const load = new Load({ port, keepAlive: 2, newConnection: 2 });
    const mark = srv.lines.length;
    srv.signal('SIGUSR2');
    await srv.waitForMsg('nserve booted after hot restart', 15000, mark);
    const result = await load.stop();
    assertNoFailedRequests(result);
    assert.equal((await getJson(port)).body.framework, name);
  });
}

for (const workers of ['0', '2']) {
  test(`listen-compat forwards HTTP upgrades (WebSocket-style) to the app's own server, -w ${workers}`, async (t) => {
    const srv = startNserve([
      'start',
      path.join(FIXTURES, 'frameworks', 'upgrade-echo.mjs'),
      '-w',
      workers,
      '--bind',
      'tcp://127.0.0.1:0',
    ]);
    t.after(() => srv.kill());
    const port = await srv.port(20000);
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
