// Long-polls do not hold a hot restart's switch. socket.io clients on the polling transport (proxies,
// some corporate networks, `transports: ['polling']`) keep a GET open for up to 25 s; a hot restart that
// waited for them stopped all HTTP traffic on the port that long. Past --switch-timeout (1 s) they finish
// on their old worker (cluster mode) or are answered 503 to poll again (single mode), and the clients
// reconnect to the new code, with no change to the app.
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { after, type TestContext, test } from 'node:test';
import { io, type Socket } from 'socket.io-client';
import { Load, stopWithoutFailures } from '../helpers/load.js';
import { now } from '../helpers/logged-process.js';
import { restart } from '../helpers/restart.js';
import { FIXTURES, isEvent, killAll, type LogLine, serveApp, until } from '../helpers/server.js';

after(killAll);

const APP = path.join(FIXTURES, 'socketio/app.mjs');
const CLIENTS = 10;

/**
 * Long-polls a drain left open at --switch-timeout: a worker's drain.done has them at the top, single
 * mode's among its long-lived counts.
 */
function longPollsLeft(l: LogLine): number {
  const longLived = l.longLived as { longPolls?: number } | undefined;
  return Number(l.longPolls ?? longLived?.longPolls ?? 0);
}

function pollingClient(t: TestContext, port: number): { socket: Socket; connects: number } {
  const socket = io(`http://127.0.0.1:${port}`, { transports: ['polling'], reconnectionDelay: 200 });
  const client = { socket, connects: 0 };
  socket.on('connect', () => {
    client.connects++;
  });
  t.after(() => socket.close());
  return client;
}

for (const workers of [2, undefined] as const) {
  const mode = workers === undefined ? 'single mode' : `cluster -w ${workers} --balance ip-hash`;
  // Single mode has no old process to finish on: the HTTP pause is the new image's boot, plus the switch.
  const maxWaitMs = workers === undefined ? 4000 : 2000;
  test(`${mode}: ${CLIENTS} socket.io polling clients do not hold a hot restart; HTTP waits < ${maxWaitMs / 1000} s, none fails, every client reconnects`, {
    timeout: 90_000,
  }, async (t) => {
    const { srv, port } = await serveApp(t, APP, {
      ...(workers === undefined ? {} : { workers, args: ['--balance', 'ip-hash'] }),
    });
    const clients = Array.from({ length: CLIENTS }, () => pollingClient(t, port));
    await until('every polling client connected', () => clients.every((c) => c.socket.connected), 15_000);
    // Let every client settle into its held GET (the server answers a poll only when it has packets).
    await new Promise((r) => setTimeout(r, 500));
    const load = new Load({ port, keepAlive: 2, newConnection: 2 });
    try {
      await load.roundsSince(now(), 3);
      const outcome = await restart(srv, 'hot', { deadlineMs: 20_000 });
      const drained = outcome.lines.find((l) => isEvent(l, 'drain.done') && longPollsLeft(l) > 0);
      assert.ok(drained !== undefined, 'the drain says how many long-polls it did not wait for');
      await load.roundsSince(now(), 3);
    } finally {
      const result = await stopWithoutFailures(load, t);
      assert.ok(result.maxMs < maxWaitMs, `the longest HTTP wait was ${Math.round(result.maxMs)} ms`);
    }
    await until(
      'every client connected again, to the new code',
      () => clients.every((c) => c.connects >= 2 && c.socket.connected),
      20_000,
    );
    for (const c of clients) {
      const reply = (await c.socket.timeout(5000).emitWithAck('whoami', 'after')) as { text: string };
      assert.equal(reply.text, 'after');
    }
  });
}
