// A long-lived response that nserve ends at a drain is still held by the app: its next write (an event
// stream's timer) comes after the end. That write must be dropped, not turned into an error: in HTTP/1 it
// is an uncaught ERR_STREAM_WRITE_AFTER_END (single mode exits 1, resetting every request in flight; a
// worker is marked failing), in HTTP/2 a RST_STREAM(INTERNAL_ERROR) that resets the stream whose
// END_STREAM was just queued. The app here writes every millisecond, so the write after the end is sure.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import * as http from 'node:http';
import * as http2 from 'node:http2';
import * as net from 'node:net';
import path from 'node:path';
import { after, test } from 'node:test';
import { restart } from '../helpers/restart.js';
import { isEvent, killAll, type ServerProcess, serveApp, tmpDir, until } from '../helpers/server.js';
import { makeCert, sslBind } from '../helpers/tls.js';

after(killAll);

// `/events?bytes=N`: an event of N bytes every millisecond; `/slow`: headers at once, the body 600 ms
// later; `/`: JSON.
const APP = `export default function (req, res) {
  const url = new URL(req.url, 'http://x');
  if (url.pathname === '/events') {
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    const event = 'data: ' + 'x'.repeat(Number(url.searchParams.get('bytes') ?? 10)) + '\\n\\n';
    const tick = setInterval(() => res.write(event), 1);
    res.on('close', () => clearInterval(tick));
    return;
  }
  const reply = () => res.end(JSON.stringify({ pid: process.pid }));
  if (url.pathname !== '/slow') return reply();
  res.writeHead(200, { 'content-type': 'application/json' });
  res.flushHeaders();
  setTimeout(reply, 600);
}
`;

// A web-standard fetch app: every request gets an event stream (a ReadableStream, an event every 5 ms)
// whose cancel() logs.
const FETCH_APP = `export default {
  fetch(request) {
    let tick;
    const events = new ReadableStream({
      start(c) {
        tick = setInterval(() => c.enqueue(new TextEncoder().encode('data: x\\n\\n')), 5);
      },
      cancel() {
        clearInterval(tick);
        console.log(JSON.stringify({ msg: 'fixture: cancelled' }));
      },
    });
    return new Response(events, { headers: { 'content-type': 'text/event-stream' } });
  },
};
`;

const UNCAUGHT = ['process.uncaught-exception', 'worker.uncaught-exception'] as const;

function writeApp(dir: string, text = APP): string {
  const file = path.join(dir, 'app.mjs');
  fs.writeFileSync(file, text);
  return file;
}

/** GET /slow: resolves `responded` once its headers came (the app holds it), `done` with its outcome. */
function slowRequest(port: number): { responded: Promise<void>; done: Promise<string> } {
  let responded!: () => void;
  const respondedP = new Promise<void>((r) => {
    responded = r;
  });
  const done = new Promise<string>((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/slow', agent: false }, (res) => {
      responded();
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        body += c;
      });
      res.on('end', () => resolve(`${res.statusCode} ${body.includes('"pid"') ? 'answered' : body}`));
      res.on('error', (err) => resolve(`error ${err.message}`));
    });
    req.on('error', (err) => resolve(`error ${err.message}`));
  });
  return { responded: respondedP, done };
}

interface H1Events {
  opened: Promise<void>;
  outcome: Promise<string>;
  /** A stalled stream reads again (a paused socket would never see the server close it). */
  resume: () => void;
}

/** An HTTP/1 event stream; resolves with how it ended. `stall`: not read (the server's writes back up). */
function h1Events(port: number, bytes: number, stall = false): H1Events {
  let resume = (): void => {};
  let opened!: () => void;
  const openedP = new Promise<void>((r) => {
    opened = r;
  });
  const outcome = new Promise<string>((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path: `/events?bytes=${bytes}`, agent: false }, (res) => {
      opened();
      if (stall) res.pause();
      resume = () => res.on('data', () => {}).resume();
      if (!stall) resume();
      let ended = false;
      res.on('end', () => {
        ended = true;
      });
      res.on('error', () => {});
      res.on('close', () => resolve(ended ? 'ended' : 'closed before its end'));
    });
    req.on('error', (err) => resolve(`error ${err.message}`));
  });
  return { opened: openedP, outcome, resume: () => resume() };
}

interface H2Events {
  session: http2.ClientHttp2Session;
  /** Every stream has its response headers. */
  opened: Promise<unknown>;
  outcomes: Promise<string>[];
}

/** HTTP/2 event streams on one session; each resolves with `ended rst <code>` or how it failed. */
function h2Events(port: number, ca: Buffer[], count: number): H2Events {
  const session = http2.connect(`https://127.0.0.1:${port}`, { ca });
  session.on('error', () => {});
  const opened: Promise<void>[] = [];
  const outcomes = Array.from(
    { length: count },
    () =>
      new Promise<string>((resolve) => {
        const req = session.request({ ':path': '/events' });
        opened.push(new Promise<void>((r) => req.once('response', () => r())));
        let ended = false;
        req.on('data', () => {});
        req.on('end', () => {
          ended = true;
        });
        req.on('error', () => {});
        req.on('close', () => resolve(`${ended ? 'ended' : 'not ended'} rst ${req.rstCode}`));
        req.end();
      }),
  );
  return { session, opened: Promise.all(opened), outcomes };
}

function assertNoUncaught(srv: ServerProcess): void {
  const uncaught = srv.lines.filter((l) => UNCAUGHT.some((e) => isEvent(l, e)));
  assert.deepEqual(
    uncaught.map((l) => l.msg),
    [],
    'no uncaught exception',
  );
}

test('HTTP/1, single mode stop: event streams nserve ended (one to a stalled client) take the app’s later writes quietly; the request in flight is answered, exit 0', {
  timeout: 30_000,
}, async (t) => {
  t.after(killAll);
  const app = writeApp(tmpDir(t));
  const { srv, port } = await serveApp(t, app, { args: ['--long-lived-grace', '0.3'] });
  const streams = Array.from({ length: 4 }, () => h1Events(port, 10));
  // 64 KB a millisecond to a client that does not read: the end is queued behind megabytes.
  const stalled = h1Events(port, 65536, true);
  await Promise.all([...streams, stalled].map((s) => s.opened));
  const slow = slowRequest(port);
  await slow.responded;
  srv.signal('SIGTERM');
  assert.deepEqual(await srv.waitExit(15_000), { code: 0, signal: null });
  assert.equal(await slow.done, '200 answered', 'the request in flight at the stop was answered');
  assert.deepEqual(await Promise.all(streams.map((s) => s.outcome)), ['ended', 'ended', 'ended', 'ended']);
  // The stalled client reads again, so that it sees its connection close (whether the end got through
  // before the exit depends on the kernel's buffers: not asserted).
  stalled.resume();
  assert.match(await stalled.outcome, /^(ended|closed before its end)$/);
  assertNoUncaught(srv);
});

test('HTTP/2, single mode stop and cluster phased restart: event streams nserve ended close with END_STREAM, never a reset', {
  timeout: 40_000,
}, async (t) => {
  t.after(killAll);
  const dir = tmpDir(t);
  const app = writeApp(dir);
  const cert = makeCert(dir, 'h2');
  const bind = sslBind(cert, '&alpn=h2,http/1.1');
  const ca = [cert.pem];
  const args = ['--long-lived-grace', '0.3'];

  const cluster = await serveApp(t, app, { workers: 2, bind, args });
  const before = h2Events(cluster.port, ca, 6);
  await before.opened;
  await restart(cluster.srv, 'phased', { deadlineMs: 20_000 });
  assert.deepEqual(await Promise.all(before.outcomes), Array(6).fill('ended rst 0'), 'phased restart');
  before.session.close();
  assertNoUncaught(cluster.srv);

  const single = await serveApp(t, app, { bind, args });
  const streams = h2Events(single.port, ca, 6);
  await streams.opened;
  single.srv.signal('SIGTERM');
  assert.deepEqual(await single.srv.waitExit(15_000), { code: 0, signal: null });
  assert.deepEqual(await Promise.all(streams.outcomes), Array(6).fill('ended rst 0'), 'single-mode stop');
  streams.session.close();
  assertNoUncaught(single.srv);
  cluster.srv.signal('SIGTERM');
  assert.deepEqual(await cluster.srv.waitExit(15_000), { code: 0, signal: null });
});

test('a fetch app’s event stream (a web ReadableStream) is cancelled, its cancel() run, when the client goes away and when a stop ends it', {
  timeout: 30_000,
}, async (t) => {
  t.after(killAll);
  const app = writeApp(tmpDir(t), FETCH_APP);
  const { srv, port } = await serveApp(t, app, { args: ['--long-lived-grace', '0.3'] });
  const cancelled = (): number => srv.lines.filter((l) => l.msg === 'fixture: cancelled').length;
  // A client that reads an event, then goes away.
  await new Promise<void>((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/events', agent: false }, (res) => {
      res.once('data', () => {
        req.destroy();
        resolve();
      });
    });
    req.on('error', () => {});
    setTimeout(() => reject(new Error('no event within 5 s')), 5000).unref();
  });
  await until('the app’s stream to be cancelled after its client left', () => cancelled() === 1, 5000);
  // One still open at a stop: ended cleanly after the grace, and the app's stream cancelled.
  const open = h1Events(port, 0);
  await open.opened;
  srv.signal('SIGTERM');
  assert.deepEqual(await srv.waitExit(15_000), { code: 0, signal: null });
  assert.equal(await open.outcome, 'ended');
  assert.equal(cancelled(), 2, 'the stream open at the stop was cancelled too');
  assertNoUncaught(srv);
});

// An app that answers an `Upgrade` itself on the raw socket, writing every millisecond, with no 'error'
// listener on it (Node's server removes its own at the upgrade).
const RAW_UPGRADE_APP = `import http from 'node:http';
const server = http.createServer((req, res) => {
  if (req.url !== '/slow') return res.end('ok');
  res.writeHead(200, { 'content-type': 'application/json' });
  res.flushHeaders();
  setTimeout(() => res.end(JSON.stringify({ pid: process.pid })), 600);
});
server.on('upgrade', (req, sock) => {
  sock.write('HTTP/1.1 101 Switching Protocols\\r\\nUpgrade: tick\\r\\nConnection: Upgrade\\r\\n\\r\\n');
  const tick = setInterval(() => sock.write('tick\\n'), 1);
  sock.on('close', () => clearInterval(tick));
});
server.listen(process.env.PORT);
`;

/** A raw `Upgrade: tick` client: `upgraded` once the 101 came, `outcome` how the connection ended. */
function rawUpgrade(port: number): { upgraded: Promise<void>; outcome: Promise<string> } {
  const sock = net.connect({ host: '127.0.0.1', port });
  const upgraded = new Promise<void>((resolve) => {
    let got = '';
    const onData = (c: Buffer): void => {
      got += c.toString('latin1');
      if (!got.startsWith('HTTP/1.1 101')) return;
      sock.off('data', onData);
      resolve();
    };
    sock.on('data', onData);
  });
  const outcome = new Promise<string>((resolve) => {
    sock.resume();
    sock.on('end', () => resolve('FIN'));
    sock.on('error', (err) => resolve(`error ${err.message}`));
  });
  sock.on('connect', () =>
    sock.write('GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: tick\r\n\r\n'),
  );
  return { upgraded, outcome };
}

test('a raw upgraded connection nserve ends at a stop takes the app’s later writes quietly: FIN, the request in flight answered, exit 0', {
  timeout: 30_000,
}, async (t) => {
  t.after(killAll);
  const app = writeApp(tmpDir(t), RAW_UPGRADE_APP);
  const { srv, port } = await serveApp(t, app, { args: ['--long-lived-grace', '0.3'] });
  const clients = Array.from({ length: 4 }, () => rawUpgrade(port));
  await Promise.all(clients.map((c) => c.upgraded));
  // A slow request keeps the drain, and the app's timers, going after the upgraded sockets are ended.
  const slow = slowRequest(port);
  await slow.responded;
  srv.signal('SIGTERM');
  assert.deepEqual(await srv.waitExit(15_000), { code: 0, signal: null });
  assert.equal(await slow.done, '200 answered', 'the request in flight at the stop was answered');
  assert.deepEqual(await Promise.all(clients.map((c) => c.outcome)), Array(4).fill('FIN'));
  assertNoUncaught(srv);
});
