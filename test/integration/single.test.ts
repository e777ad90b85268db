import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import { after, test } from 'node:test';
import { getJson } from '../helpers/load.js';
import { writeRelease } from '../helpers/releases.js';
import { isEvent, killAll, runNserve, serveApp, startNserve, tmpDir } from '../helpers/server.js';

after(killAll);

function getUnix(socketPath: string, urlPath: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ socketPath, path: urlPath, agent: false, timeout: 5000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        body += c;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
  });
}

test('single mode serves over TCP and a unix socket; SIGTERM lets a slow request finish, then exits 0', async (t) => {
  const root = tmpDir(t);
  const dir = writeRelease(root, 'v1', { announceRequests: true });
  const sock = path.join(root, 'app.sock');
  const pidfile = path.join(root, 'nserve.pid');
  const srv = startNserve([
    'start',
    path.join(dir, 'app.mjs'),
    '--bind',
    'tcp://127.0.0.1:0',
    '--bind',
    `unix://${sock}?mode=0600`,
    '--pidfile',
    pidfile,
  ]);
  t.after(() => srv.kill());
  const port = await srv.port();

  const tcp = await getJson(port);
  assert.equal(tcp.status, 200);
  assert.equal(tcp.body.version, 'v1');
  assert.equal(tcp.body.pid, srv.pid, 'single mode: the server process itself answers');

  const unix = await getUnix(sock, '/');
  assert.equal(unix.status, 200);
  assert.equal(JSON.parse(unix.body).version, 'v1');
  assert.equal(fs.statSync(sock).mode & 0o777, 0o600);
  assert.equal(fs.readFileSync(pidfile, 'utf8').trim(), String(srv.pid));

  const slow = getJson(port, '/slow');
  await srv.waitForLog(
    'the slow request to reach the app',
    (l) => l.msg === 'fixture: request' && l.path === '/slow',
  );
  const sentAt = Date.now();
  srv.signal('SIGTERM');
  const res = await slow;
  assert.equal(res.status, 200, 'the in-flight request completes');
  assert.equal(res.body.version, 'v1');
  const exit = await srv.waitExit(10000);
  assert.deepEqual(exit, { code: 0, signal: null });
  assert.ok(Date.now() - sentAt < 5000);
  assert.equal(fs.existsSync(sock), false, 'unix socket file removed');
  assert.equal(fs.existsSync(pidfile), false, 'pidfile removed');
});

test('a fetch-style app is served', async (t) => {
  const { port } = await serveApp(t, 'examples/fetch.mjs');
  const res = await fetch(`http://127.0.0.1:${port}/hello?name=x`, { method: 'POST', body: 'ping' });
  assert.equal(res.status, 200);
  const body = (await res.json()) as Record<string, unknown>;
  assert.equal(body.echo, 'ping');
  assert.equal(body.path, '/hello');
});

test('a request handler that throws gets a 500 and the server keeps serving', async (t) => {
  const root = tmpDir(t);
  fs.writeFileSync(
    path.join(root, 'app.cjs'),
    "module.exports = (req, res) => { if (req.url === '/boom') throw new Error('boom'); res.end('{\"ok\":true}'); };\n",
  );
  const { srv, port } = await serveApp(t, 'app.cjs', { directory: root });
  const boom = await fetch(`http://127.0.0.1:${port}/boom`);
  assert.equal(boom.status, 500);
  await srv.waitForEvent('app.handler.threw');
  const ok = await getJson(port);
  assert.equal(ok.status, 200);
});

test('nserve config --print shows merged values and their sources', async (t) => {
  const dir = tmpDir(t);
  fs.writeFileSync(
    path.join(dir, 'nserve.config.json'),
    JSON.stringify({ app: 'app.mjs', workers: 2, drainGrace: 0.5 }),
  );
  const r = await runNserve(['config', '--print', '--workers', '3', '--json'], {
    cwd: dir,
    env: { WEB_CONCURRENCY: '5', PORT: '4001' },
  });
  assert.equal(r.code, 0, r.stderr);
  const printed = JSON.parse(r.stdout.map((l) => (l.raw ? l.msg : JSON.stringify(l))).join('\n')) as Record<
    string,
    { value: unknown; source: string }
  >;
  assert.deepEqual(printed.workers, { value: 3, source: 'flag' });
  assert.deepEqual(printed.drainGrace, { value: 0.5, source: 'file' });
  assert.deepEqual(printed.bind, { value: ['tcp://0.0.0.0:4001'], source: 'env' });
  assert.deepEqual(printed.backlog, { value: 1024, source: 'default' });
  assert.deepEqual(printed.app, { value: 'app.mjs', source: 'file' });
  const bad = await runNserve(['config', '--print', 'app.mjs', '--backlog', 'big'], { cwd: dir });
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /^nserve: error: invalid --backlog: "big": expected an integer from 1 to 65535/);
});

test('--access-log logs each request; --health-path is answered by nserve (200, then 503 while draining)', async (t) => {
  const root = tmpDir(t);
  const dir = writeRelease(root, 'v1', { announceRequests: true });
  const { srv, port } = await serveApp(t, path.join(dir, 'app.mjs'), {
    args: ['--access-log', '--health-path', '/healthz'],
  });
  await getJson(port, '/things?id=1');
  const line = await srv.waitForEvent('http.request.done');
  assert.equal(line.method, 'GET');
  assert.equal(line.path, '/things?id=1');
  assert.equal(line.status, 200);
  assert.equal(typeof line.ms, 'number');
  const health = await getJson(port, '/healthz');
  assert.equal(health.status, 200);
  assert.equal(health.body.status, 'ok');
  assert.ok(
    !srv.lines.some((l) => isEvent(l, 'http.request.done') && l.path === '/healthz'),
    'health checks are not app requests',
  );
  // While a slow request keeps the server draining, the health path says 503 on a kept-alive connection.
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  t.after(() => agent.destroy());
  const viaAgent = (p: string) =>
    new Promise<number>((resolve, reject) => {
      http
        .get({ host: '127.0.0.1', port, path: p, agent }, (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode ?? 0));
        })
        .on('error', reject);
    });
  assert.equal(await viaAgent('/healthz'), 200);
  const slow = getJson(port, '/slow');
  await srv.waitForLog(
    'the slow request to reach the app',
    (l) => l.msg === 'fixture: request' && l.path === '/slow',
  );
  srv.signal('SIGTERM');
  await srv.waitForEvent('stop.draining');
  assert.equal(await viaAgent('/healthz'), 503);
  assert.equal((await slow).status, 200);
});

test("a config file typed with `import { defineConfig } from 'nserve'` loads and serves", async (t) => {
  const srv = startNserve([
    'start',
    '-C',
    'test/fixtures/define-config/nserve.config.mjs',
    '--bind',
    'tcp://127.0.0.1:0',
  ]);
  t.after(() => srv.kill());
  const port = await srv.port(20000);
  const booted = srv.lines.find((l) => isEvent(l, 'server.booted'));
  assert.equal(booted?.workers, 2, 'workers from the config file');
  assert.equal((await getJson(port)).status, 200);
});
