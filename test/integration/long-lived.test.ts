// WebSockets and event streams through every kind of restart and a stop: they never hold new requests
// up, they are closed cleanly (a close, never a reset), every client reconnects to the new release, and
// in hot restarts old code answers nothing once new code has answered.
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { getJson, Load } from '../helpers/load.js';
import { makeLongLivedReleases, type Reply, SseClient, WsClient } from '../helpers/long-lived.js';
import { restart } from '../helpers/restart.js';
import { isEvent, killAll, type ServerProcess, startNserve, until } from '../helpers/server.js';
import { tmpDir } from '../helpers/tmp.js';

after(killAll);

/** Polls `/` on new connections, recording which release answered when (server clock). */
class Prober {
  readonly answers: Reply[] = [];
  private running = true;
  private readonly loop: Promise<void>;

  constructor(port: number) {
    this.loop = (async () => {
      while (this.running) {
        try {
          const { body } = await getJson(port);
          this.answers.push({ version: String(body.version), at: Number(body.at) });
        } catch {
          // counted by the Load clients; this one only records versions
        }
        await new Promise((r) => setTimeout(r, 10));
      }
    })();
  }

  firstAnswerOf(version: string): number | undefined {
    return this.answers.find((a) => a.version === version)?.at;
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.loop;
  }
}

interface Clients {
  ws: WsClient[];
  sse: SseClient[];
}

function connect(port: number, ws: number, sse: number): Clients {
  return {
    ws: Array.from({ length: ws }, () => new WsClient(port)),
    sse: Array.from({ length: sse }, () => new SseClient(port)),
  };
}

function stopAll(c: Clients): void {
  for (const x of [...c.ws, ...c.sse]) x.stop();
}

async function allOn(c: Clients, version: string, deadlineMs = 15000): Promise<void> {
  await until(
    `every WebSocket and event-stream client answered by ${version}`,
    () => c.ws.every((w) => w.last?.version === version) && c.sse.every((s) => s.last?.version === version),
    deadlineMs,
  );
}

/** The latest time old code answered a long-lived client, server clock. */
function lastOldAnswer(c: Clients, old: string): number {
  const times = c.ws.flatMap((w) => w.replies.filter((r) => r.version === old).map((r) => r.at));
  return Math.max(0, ...times);
}

async function serve(root: string, extra: string[]): Promise<{ srv: ServerProcess; port: number }> {
  const srv = startNserve([
    'start',
    'app.mjs',
    '--directory',
    `${root}/current`,
    '--bind',
    'tcp://127.0.0.1:0',
    ...extra,
  ]);
  return { srv, port: await srv.port(20000) };
}

test('-w 2: 8 WebSockets, 2 event streams and HTTP load through 2 hot restarts and a phased restart', {
  timeout: 150_000,
}, async (t) => {
  const root = tmpDir(t);
  const BOOT = 1500;
  makeLongLivedReleases(root, ['v1', 'v2', 'v3', 'v4'], { bootMs: BOOT });
  const { srv, port } = await serve(root, ['-w', '2']);
  t.after(() => srv.kill());
  const clients = connect(port, 8, 2);
  t.after(() => stopAll(clients));
  await allOn(clients, 'v1');
  const load = new Load({ port, keepAlive: 2, newConnection: 2 });
  const prober = new Prober(port);
  t.after(async () => {
    await prober.stop();
    await load.stop();
  });
  let current = 'v1';
  for (const [kind, next] of [
    ['hot', 'v2'],
    ['hot', 'v3'],
    ['phased', 'v4'],
  ] as const) {
    await restart(srv, kind, { release: { root, version: next }, deadlineMs: 30000 });
    await allOn(clients, next);
    if (kind === 'hot') {
      const newFirst = prober.firstAnswerOf(next);
      assert.ok(newFirst !== undefined, `${next} answered HTTP`);
      assert.ok(
        lastOldAnswer(clients, current) <= newFirst,
        `${kind} → ${next}: no WebSocket message answered by ${current} after ${next} first answered HTTP`,
      );
    }
    current = next;
  }
  await prober.stop();
  const result = await load.stop();
  assert.equal(result.failed, 0, `failed HTTP requests: ${JSON.stringify(result.byKind)}`);
  assert.ok(result.maxMs < BOOT / 2, `longest HTTP wait ${Math.round(result.maxMs)} ms < half the boot`);
  for (const w of clients.ws) {
    assert.deepEqual(w.errors, [], 'WebSocket clients see closes, never a reset or error');
    assert.ok(w.closes.length >= 3, `each WebSocket client was closed at each restart (${w.closes})`);
    // An unmodified ws app: nserve's own close frame, 1012 (service restart), never 1006 (no frame).
    assert.deepEqual([...new Set(w.closes)], [1012], `every close says "service restart": ${w.closes}`);
  }
  for (const s of clients.sse) assert.deepEqual(s.errors, [], 'event streams end cleanly, never reset');
});

test('single mode: the same clients through a hot restart; the longest HTTP wait stays within boot + 1 s', {
  timeout: 60_000,
}, async (t) => {
  const root = tmpDir(t);
  const BOOT = 800;
  makeLongLivedReleases(root, ['v1', 'v2'], { bootMs: BOOT });
  const { srv, port } = await serve(root, []);
  t.after(() => srv.kill());
  const clients = connect(port, 8, 2);
  t.after(() => stopAll(clients));
  await allOn(clients, 'v1');
  const load = new Load({ port, keepAlive: 2, newConnection: 2 });
  await restart(srv, 'hot', { release: { root, version: 'v2' }, deadlineMs: 30000 });
  await allOn(clients, 'v2');
  const result = await load.stop();
  assert.equal(result.failed, 0, `failed HTTP requests: ${JSON.stringify(result.byKind)}`);
  // The boot check plus the boot after the exec: what bounds the wait is the new image's boot.
  assert.ok(result.maxMs < BOOT + 1000, `longest HTTP wait ${Math.round(result.maxMs)} ms < boot + 1 s`);
  for (const w of clients.ws) assert.deepEqual(w.errors, []);
  for (const s of clients.sse) assert.deepEqual(s.errors, []);
});

test('an app using the drain API closes its WebSockets with 1012, and the clients see 1012', {
  timeout: 60_000,
}, async (t) => {
  const root = tmpDir(t);
  makeLongLivedReleases(root, ['v1', 'v2'], { bootMs: 300, drainApi: true });
  const { srv, port } = await serve(root, ['-w', '2']);
  t.after(() => srv.kill());
  const clients = connect(port, 4, 0);
  t.after(() => stopAll(clients));
  await allOn(clients, 'v1');
  const outcome = await restart(srv, 'hot', { release: { root, version: 'v2' }, deadlineMs: 30000 });
  await allOn(clients, 'v2');
  for (const w of clients.ws) {
    // A client that reconnects at once may reach the old worker again before it stops accepting: that
    // connection is then closed cleanly at the hand-over.
    assert.equal(w.closes[0], 1012, `closed by the app with 1012 (service restart): ${w.closes}`);
    assert.deepEqual(w.errors, []);
  }
  const drained = outcome.lines.filter((l) => isEvent(l, 'drain.done'));
  assert.ok(drained.length > 0);
});

test('a graceful stop with WebSockets and event streams connected exits within a few seconds, status 0', {
  timeout: 60_000,
}, async (t) => {
  const root = tmpDir(t);
  makeLongLivedReleases(root, ['v1'], { bootMs: 0 });
  for (const workers of ['0', '2']) {
    const { srv, port } = await serve(root, ['-w', workers]);
    t.after(() => srv.kill());
    const clients = connect(port, 4, 2);
    await allOn(clients, 'v1');
    const started = Date.now();
    srv.signal('SIGTERM');
    assert.deepEqual(await srv.waitExit(10000), { code: 0, signal: null });
    stopAll(clients);
    assert.ok(Date.now() - started < 5000, `-w ${workers}: stopped in ${Date.now() - started} ms`);
    const drainLine = srv.lines.find((l) => isEvent(l, 'drain.done'));
    assert.equal(
      typeof (drainLine?.longLived as { asked?: unknown } | undefined)?.asked,
      'number',
      `-w ${workers}: the drain log counts the long-lived connections`,
    );
    for (const w of clients.ws) assert.deepEqual(w.errors, [], `-w ${workers}: closes, no resets`);
  }
});
