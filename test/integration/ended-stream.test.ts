// A long-lived response that nserve ends at a drain is still held by the app: its next write (an event
// stream's timer) comes after the end. That write must be dropped, not turned into an error: in HTTP/1 it
// is an uncaught ERR_STREAM_WRITE_AFTER_END (single mode exits 1, resetting every request in flight; a
// worker is marked failing), in HTTP/2 a RST_STREAM(INTERNAL_ERROR) that resets the stream whose
// END_STREAM was just queued. The app here writes every millisecond, so the write after the end is sure.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import * as http from 'node:http';
import * as http2 from 'node:http2';
import path from 'node:path';
import { after, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { getJson } from '../helpers/load.js';
import { restart } from '../helpers/restart.js';
import { isEvent, killAll, type ServerProcess, serveApp, tmpDir } from '../helpers/server.js';
import { makeCert, sslBind } from '../helpers/tls.js';

after(killAll);

// `/events?bytes=N`: an event of N bytes every millisecond; `/slow`: answered after 600 ms; `/`: JSON.
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
  if (url.pathname === '/slow') setTimeout(reply, 600);
  else reply();
}
`;

const UNCAUGHT = ['process.uncaught-exception', 'worker.uncaught-exception'] as const;

function writeApp(dir: string): string {
  const file = path.join(dir, 'app.mjs');
  fs.writeFileSync(file, APP);
  return file;
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
  const slow = getJson(port, '/slow');
  await sleep(100); // the request has reached the app
  srv.signal('SIGTERM');
  assert.deepEqual(await srv.waitExit(15_000), { code: 0, signal: null });
  assert.equal((await slow).status, 200, 'the request in flight at the stop was answered');
  assert.deepEqual(await Promise.all(streams.map((s) => s.outcome)), ['ended', 'ended', 'ended', 'ended']);
  // The stalled client never had the end (the server gave up on it at its exit); it reads the rest now.
  stalled.resume();
  assert.equal(await stalled.outcome, 'closed before its end');
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
