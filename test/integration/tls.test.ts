// TLS end to end (issue 22): ssl:// binds served by workers through restarts, certificate rotation
// without a restart (SIGHUP, ctl reload-certs), HTTPS apps through listen-compat, HTTP/2 by ALPN.
// Certificates are made by openssl in each test.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as http2 from 'node:http2';
import * as path from 'node:path';
import { after, type TestContext, test } from 'node:test';
import { ctl } from '../helpers/control.js';
import { Load, stopWithoutFailures } from '../helpers/load.js';
import { now } from '../helpers/logged-process.js';
import { makeReleases, versions } from '../helpers/releases.js';
import { restart } from '../helpers/restart.js';
import {
  childPids,
  FIXTURES,
  isEvent,
  killAll,
  type LogLine,
  ROOT,
  runNserve,
  serveApp,
  serveCurrent,
  tmpDir,
  until,
} from '../helpers/server.js';
import { getJsonTls, handshake, makeCert, replaceFile, sslBind } from '../helpers/tls.js';

after(killAll);

test('https -w 2: keep-alive and new-connection load through a hot restart and a phased restart, zero failed requests', {
  timeout: 120_000,
}, async (t) => {
  const dir = tmpDir(t);
  const cert = makeCert(dir, 'site');
  const root = makeReleases(t, versions(3), 'v1');
  const { srv, port } = await serveCurrent(t, root, { workers: 2, bind: sslBind(cert) });
  const ca = [cert.pem];
  assert.equal((await getJsonTls(port, ca)).body.version, 'v1');
  const load = new Load({ port, keepAlive: 4, newConnection: 3, tls: { ca } });
  try {
    await load.warmedUp();
    await restart(srv, 'hot', { release: { root, version: 'v2' }, deadlineMs: 30_000 });
    await load.firstFrom('v2', now());
    await load.roundsSince(now(), 3);
    await restart(srv, 'phased', { release: { root, version: 'v3' }, deadlineMs: 30_000 });
    await load.firstFrom('v3', now());
    await load.roundsSince(now(), 3);
  } finally {
    const result = await stopWithoutFailures(load, t);
    assert.ok(result.ok > 100, `load ran (${result.ok} requests)`);
    const versionsSeen = new Set(result.done.map((d) => d.version));
    assert.deepEqual([...versionsSeen].sort(), ['v1', 'v2', 'v3']);
  }
  assert.equal((await handshake(port, { ca })).serial, cert.serial);
});

test('https single mode: hot restart under keep-alive and new-connection load, zero failed requests', async (t) => {
  const dir = tmpDir(t);
  const cert = makeCert(dir, 'site');
  const root = makeReleases(t, versions(2), 'v1');
  const { srv, port } = await serveCurrent(t, root, { bind: sslBind(cert) });
  const load = new Load({ port, keepAlive: 3, newConnection: 2, tls: { ca: [cert.pem] } });
  try {
    await load.warmedUp();
    await restart(srv, 'hot', { release: { root, version: 'v2' } });
    await load.firstFrom('v2', now());
    await load.roundsSince(now(), 3);
  } finally {
    await stopWithoutFailures(load, t);
  }
});

/**
 * Certificates `first` and `second`; `live` (the files the ssl:// bind names) holds `first`. Serving with
 * `workers` (0: single mode) and a control server; returns once it listens.
 */
async function servingRotatable(t: TestContext, workers: number) {
  const dir = tmpDir(t);
  const first = makeCert(dir, 'first');
  const second = makeCert(dir, 'second');
  const live = { cert: path.join(dir, 'live.crt'), key: path.join(dir, 'live.key') };
  fs.copyFileSync(first.cert, live.cert);
  fs.copyFileSync(first.key, live.key);
  const state = path.join(dir, 'nserve.state');
  const root = makeReleases(t, versions(1), 'v1');
  const { srv, port } = await serveCurrent(t, root, {
    ...(workers === 0 ? {} : { workers }),
    bind: sslBind(live),
    args: ['--state', state, '--control-url', 'auto'],
  });
  await srv.waitForEvent('control.server.listening');
  return { first, second, live, state, srv, port };
}

test('rotation under load (-w 2): SIGHUP serves the new certificate to new handshakes, same workers, no failed request; a corrupt one keeps the old and says why, in the log and in ctl', {
  timeout: 90_000,
}, async (t) => {
  const { first, second, live, state, srv, port } = await servingRotatable(t, 2);
  const ca = [first.pem, second.pem];
  assert.equal((await handshake(port, { ca })).serial, first.serial);
  const workers = childPids(srv.pid).sort();
  assert.equal(workers.length, 2);
  const load = new Load({ port, keepAlive: 4, newConnection: 3, tls: { ca } });
  try {
    await load.warmedUp();
    // The key first, then the certificate: for a moment they do not match; a reload then is refused.
    replaceFile(live.key, second.key);
    replaceFile(live.cert, second.cert);
    let mark = srv.lines.length;
    srv.signal('SIGHUP');
    const reloaded = (l: LogLine): boolean => isEvent(l, 'tls.reload.done', 'tls.reload.failed');
    const done = await srv.waitForLog('reload-certs #1', (l) => reloaded(l) && l.reload === 1, 10_000, mark);
    assert.equal(done.event, 'tls.reload.done');
    assert.match(String(done.msg), new RegExp(second.serial));
    for (let i = 0; i < 5; i++) assert.equal((await handshake(port, { ca })).serial, second.serial);
    await load.roundsSince(now(), 3);

    // A corrupt certificate: refused, the second one keeps serving, the log names the file.
    fs.writeFileSync(
      live.cert,
      '-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n',
    );
    mark = srv.lines.length;
    srv.signal('SIGHUP');
    const refused = await srv.waitForLog(
      'reload-certs #2',
      (l) => reloaded(l) && l.reload === 2,
      10_000,
      mark,
    );
    assert.equal(refused.event, 'tls.reload.failed');
    assert.ok(String(refused.msg).includes(live.cert), `the log line names the file: ${refused.msg}`);
    assert.equal(refused.code, 'ERR_NSERVE_TLS');
    assert.equal((await handshake(port, { ca })).serial, second.serial);
    await load.roundsSince(now(), 3);

    // ctl reload-certs says the same, with exit status 1.
    const verdictLine = await ctl(['reload-certs', '-S', state]);
    assert.equal(verdictLine.code, 1, `ctl exit status: ${verdictLine.stderr}`);
    assert.match(verdictLine.stderr, /reload-certs #3 refused: .*the old certificate keeps serving/);
    assert.ok(verdictLine.stderr.includes(live.cert));
    assert.equal(verdictLine.stderr.trim().split('\n').length, 1, 'one line');

    // Fixed files: ctl reloads them and exits 0; stats show the served certificate's subject and expiry.
    replaceFile(live.cert, first.cert);
    replaceFile(live.key, first.key);
    const fixed = await ctl(['reload-certs', '-S', state, '--json']);
    assert.equal(fixed.code, 0, fixed.stderr);
    const verdict = JSON.parse(fixed.stdout) as {
      ok: boolean;
      workers: { pid: number; ok: boolean }[];
    };
    assert.equal(verdict.ok, true);
    assert.deepEqual(verdict.workers.map((w) => w.pid).sort(), workers);
    assert.equal((await handshake(port, { ca })).serial, first.serial);
    const stats = await ctl(['stats', '-S', state, '--json']);
    const tls = (
      JSON.parse(stats.stdout) as {
        tls: { binds: { subject: string; validTo: string; serial: string; daysLeft: number }[] };
      }
    ).tls;
    assert.equal(tls.binds.length, 1);
    assert.equal(tls.binds[0]!.subject, 'CN=first');
    assert.equal(tls.binds[0]!.serial, first.serial);
    assert.ok(tls.binds[0]!.daysLeft >= 28 && tls.binds[0]!.daysLeft <= 30, JSON.stringify(tls.binds[0]));
    assert.ok(!Number.isNaN(Date.parse(tls.binds[0]!.validTo)));
  } finally {
    await stopWithoutFailures(load, t);
  }
  assert.deepEqual(childPids(srv.pid).sort(), workers, 'no worker was replaced');
  // SIGHUP with ssl:// binds and no redirected output reloads certificates; it does not stop the server.
  assert.equal(srv.exitStatus, undefined);
});

test('rotation in single mode: ctl reload-certs', async (t) => {
  const { first, second, live, state, srv, port } = await servingRotatable(t, 0);
  assert.equal((await handshake(port)).serial, first.serial);
  replaceFile(live.key, second.key);
  replaceFile(live.cert, second.cert);
  const reloaded = await ctl(['reload-certs', '-S', state]);
  assert.equal(reloaded.code, 0, reloaded.stderr);
  assert.match(reloaded.stdout, new RegExp(`^reload-certs #1 done: .*serial ${second.serial}`));
  assert.equal((await handshake(port)).serial, second.serial);
  assert.equal(srv.exitStatus, undefined);
});

for (const workers of [0, 2]) {
  test(`an unmodified express app with https.createServer(opts, app).listen(PORT) serves through nserve, -w ${workers}`, async (t) => {
    const dir = tmpDir(t);
    const cert = makeCert(dir, 'app');
    const { srv, port } = await serveApp(t, path.join(FIXTURES, 'frameworks', 'express-https.mjs'), {
      workers,
      env: { TEST_TLS_CERT: cert.cert, TEST_TLS_KEY: cert.key },
    });
    const res = await getJsonTls(port, [cert.pem], '/hello');
    assert.equal(res.status, 200);
    assert.equal(res.body.framework, 'express');
    assert.equal(res.body.secure, true);
    assert.equal(res.body.path, '/hello');
    if (workers === 0) assert.equal(res.body.pid, srv.pid);
    else assert.ok(childPids(srv.pid).includes(Number(res.body.pid)));
    // The app's own certificate, and keep-alive load through a restart counts as nserve's requests.
    assert.equal((await handshake(port, { ca: [cert.pem] })).serial, cert.serial);
    const load = new Load({ port, keepAlive: 2, newConnection: 2, tls: { ca: [cert.pem] } });
    try {
      await load.warmedUp();
      await restart(srv, workers === 0 ? 'hot' : 'phased', { deadlineMs: 30_000 });
      await load.roundsSince(now(), 3);
    } finally {
      await stopWithoutFailures(load, t);
    }
  });
}

test('an https app with an upgrade handler (secure WebSocket shape) gets the upgrade through listen-compat, -w 2', async (t) => {
  const dir = tmpDir(t);
  const cert = makeCert(dir, 'ws');
  const { port } = await serveApp(t, path.join(FIXTURES, 'frameworks', 'upgrade-echo-https.mjs'), {
    workers: 2,
    env: { TEST_TLS_CERT: cert.cert, TEST_TLS_KEY: cert.key },
  });
  const tls = await import('node:tls');
  const sock = tls.connect({ host: '127.0.0.1', port, ca: [cert.pem] });
  t.after(() => sock.destroy());
  let got = '';
  sock.setEncoding('utf8');
  sock.on('data', (c: string) => {
    got += c;
  });
  sock.write('GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n');
  await until('the 101', () => got.includes('\r\n\r\n'), 5000);
  assert.match(got, /^HTTP\/1\.1 101 Switching Protocols/);
  sock.write('ping over the upgraded TLS connection');
  await until('the echo', () => got.endsWith('ping over the upgraded TLS connection'), 5000);
});

/** One GET over HTTP/2 on a new session. */
async function getH2(
  port: number,
  ca: Buffer[],
  urlPath: string,
): Promise<{ status: number; body: Record<string, unknown> }> {
  const session = http2.connect(`https://127.0.0.1:${port}`, { ca });
  try {
    return await new Promise((resolve, reject) => {
      const req = session.request({ ':path': urlPath });
      let status = 0;
      const chunks: Buffer[] = [];
      req.on('response', (headers) => {
        status = Number(headers[':status']);
      });
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () =>
        resolve({
          status,
          body: JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>,
        }),
      );
      req.on('error', reject);
      req.setTimeout(5000, () => req.close(http2.constants.NGHTTP2_CANCEL));
      req.end();
    });
  } finally {
    session.close();
  }
}

test('HTTP/2 by ALPN (alpn=h2,http/1.1): a koa app answers over h2, and over HTTP/1.1 for clients without h2', async (t) => {
  const dir = tmpDir(t);
  const cert = makeCert(dir, 'h2');
  const { port } = await serveApp(t, path.join(FIXTURES, 'frameworks', 'koa.mjs'), {
    workers: 2,
    bind: sslBind(cert, '&alpn=h2,http/1.1'),
  });
  assert.equal((await handshake(port, { ca: [cert.pem], alpn: ['h2', 'http/1.1'] })).alpn, 'h2');
  const h2 = await getH2(port, [cert.pem], '/over-h2');
  assert.equal(h2.status, 200);
  assert.equal(h2.body.framework, 'koa');
  assert.equal(h2.body.path, '/over-h2');
  const h1 = await getJsonTls(port, [cert.pem], '/over-h1');
  assert.equal(h1.body.framework, 'koa');
  assert.equal((await handshake(port, { ca: [cert.pem], alpn: ['http/1.1'] })).alpn, 'http/1.1');
});

test("HTTP/2: a fetch-handler app (Hono) answers over h2 through nserve's fetch adapter", async (t) => {
  const dir = tmpDir(t);
  const cert = makeCert(dir, 'h2');
  const { port } = await serveApp(t, path.join(FIXTURES, 'frameworks', 'hono.mjs'), {
    bind: sslBind(cert, '&alpn=h2,http/1.1'),
  });
  const h2 = await getH2(port, [cert.pem], '/fetch-over-h2');
  assert.equal(h2.status, 200);
  assert.equal(h2.body.framework, 'hono');
  assert.equal(h2.body.path, '/fetch-over-h2');
});

test('verify_mode=force_peer with ca: a client without a certificate is refused, one with a certificate from the CA is served', async (t) => {
  const dir = tmpDir(t);
  const cert = makeCert(dir, 'server');
  const client = makeCert(dir, 'client');
  const { port } = await serveApp(t, path.join(ROOT, 'examples/hello.mjs'), {
    bind: sslBind(cert, `&ca=${client.cert}&verify_mode=force_peer`),
  });
  const tls = await import('node:tls');
  const attempt = (withCert: boolean): Promise<string> =>
    new Promise((resolve) => {
      const sock = tls.connect({
        host: '127.0.0.1',
        port,
        ca: [cert.pem],
        ...(withCert ? { cert: client.pem, key: fs.readFileSync(client.key) } : {}),
      });
      let got = '';
      sock.setEncoding('utf8');
      sock.on('secureConnect', () => sock.write('GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'));
      sock.on('data', (c: string) => {
        got += c;
      });
      sock.on('error', (err) => resolve(`error: ${err.message}`));
      sock.on('close', () => resolve(got));
      setTimeout(() => sock.destroy(), 5000).unref();
    });
  assert.match(await attempt(true), /^HTTP\/1\.1 200/);
  assert.doesNotMatch(await attempt(false), /^HTTP\/1\.1 200/);
});

// ── bad input: one line, exit 2, nothing bound ──────────────────────────────────────────────────────

test('bad TLS input: each is one line naming the file or parameter, exit 2, before any socket is bound', {
  timeout: 120_000,
}, async (t) => {
  const dir = tmpDir(t);
  const good = makeCert(dir, 'good');
  const other = makeCert(dir, 'other');
  const corrupt = path.join(dir, 'corrupt.pem');
  fs.writeFileSync(corrupt, '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n');
  const notPem = path.join(dir, 'not.pem');
  fs.writeFileSync(notPem, 'hello\n');
  const missing = path.join(dir, 'missing.pem');
  const base = `ssl://127.0.0.1:0`;
  const cases: { name: string; bind: string; names: string }[] = [
    { name: 'missing certificate file', bind: `${base}?cert=${missing}&key=${good.key}`, names: missing },
    { name: 'missing key file', bind: `${base}?cert=${good.cert}&key=${missing}`, names: missing },
    { name: 'unreadable certificate (a directory)', bind: `${base}?cert=${dir}&key=${good.key}`, names: dir },
    {
      name: 'key of another certificate',
      bind: `${base}?cert=${good.cert}&key=${other.key}`,
      names: other.key,
    },
    { name: 'corrupt certificate', bind: `${base}?cert=${corrupt}&key=${good.key}`, names: corrupt },
    { name: 'key file that is no key', bind: `${base}?cert=${good.cert}&key=${notPem}`, names: notPem },
    { name: 'corrupt CA', bind: `${base}?cert=${good.cert}&key=${good.key}&ca=${notPem}`, names: notPem },
    {
      name: 'unknown parameter',
      bind: `${base}?cert=${good.cert}&key=${good.key}&verify=peer`,
      names: '"verify"',
    },
    { name: 'no key parameter', bind: `${base}?cert=${good.cert}`, names: '"key"' },
    { name: 'no parameters at all', bind: `${base}`, names: 'cert' },
    { name: 'relative path', bind: `${base}?cert=good.crt&key=${good.key}`, names: 'good.crt' },
    {
      name: 'bad verify_mode',
      bind: `${base}?cert=${good.cert}&key=${good.key}&verify_mode=yes`,
      names: 'verify_mode',
    },
    {
      name: 'bad min_version',
      bind: `${base}?cert=${good.cert}&key=${good.key}&min_version=TLSv1`,
      names: 'min_version',
    },
    { name: 'bad alpn', bind: `${base}?cert=${good.cert}&key=${good.key}&alpn=h3`, names: 'alpn "h3"' },
  ];
  for (const c of cases) {
    const state = path.join(dir, 'bad.state');
    const r = await runNserve([
      'start',
      path.join(ROOT, 'examples/hello.mjs'),
      '--bind',
      c.bind,
      '-w',
      '2',
      '--state',
      state,
      '--control-url',
      'auto',
    ]);
    assert.equal(r.code, 2, `${c.name}: exit status (stderr: ${r.stderr})`);
    const lines = r.stderr.trim().split('\n');
    assert.equal(lines.length, 1, `${c.name}: one line: ${r.stderr}`);
    assert.ok(lines[0]!.includes(c.names), `${c.name}: names ${c.names}: ${lines[0]}`);
    assert.ok(!lines[0]!.includes('PRIVATE KEY'), `${c.name}: no key material`);
    // Nothing was bound: not even the control socket, which binds before the app's sockets.
    assert.ok(!fs.existsSync(path.join(dir, 'bad.ctl.sock')), `${c.name}: no control socket`);
    assert.equal(r.stdout.length, 0, `${c.name}: nothing logged`);
  }
  // The same check applies to a bind given in the config file.
  const cfg = path.join(dir, 'nserve.config.json');
  fs.writeFileSync(cfg, JSON.stringify({ bind: `${base}?cert=${missing}&key=${good.key}` }));
  const r = await runNserve(['start', path.join(ROOT, 'examples/hello.mjs'), '-C', cfg]);
  assert.equal(r.code, 2, r.stderr);
  assert.match(
    r.stderr.trim(),
    new RegExp(`^nserve: error: .*${missing.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: no such file$`),
  );
});
