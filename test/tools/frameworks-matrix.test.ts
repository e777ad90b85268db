// The framework matrix: real Next.js (App Router, a real `next build`) and NestJS apps, built as their
// users build them, under `-w 2` through a phased restart (SIGUSR1) and a hot restart (SIGUSR2) to new
// releases under load: not one request fails, and each restart's new code answers. Then the whole
// process group gets a stop signal (Ctrl-C, systemctl stop) with slow requests in flight: all complete
// and the exit status is 0, with each framework's own SIGTERM/SIGINT handling in place.
//
// Part of `npm run test:tools`, not `npm test`: the frameworks live in test/frameworks-matrix/ (installed
// by scripts/frameworks-matrix.mjs, kept out of the root package), and the builds take tens of seconds.
// The rest of the matrix runs in `npm test` already (docs/frameworks.md lists it): Express, Fastify, Koa
// and Hono in test/integration/frameworks.test.ts; socket.io polling clients through a hot restart in
// long-poll.test.ts; group stops of an exit-at-once app in group-stop.test.ts; the in-place canary in
// canary-no-way-back.test.ts. socket.io with the drain API (`onDrain(() => io.close())`, the recipe of
// docs/frameworks.md) is here.
import assert from 'node:assert/strict';
import * as http from 'node:http';
import * as path from 'node:path';
import { after, before, type TestContext, test } from 'node:test';
import { io, type Socket } from 'socket.io-client';
import {
  assertMatrixInstalled,
  buildNestRelease,
  buildStandaloneRelease,
  matrixWorkDir,
  NEXT_BIN,
  NEXT_ENV,
  nextBuild,
  writeNextApp,
} from '../helpers/frameworks-matrix.js';
import { getJson, Load, type LoadResult } from '../helpers/load.js';
import { now } from '../helpers/logged-process.js';
import { switchRelease } from '../helpers/releases.js';
import { restart } from '../helpers/restart.js';
import { FIXTURES, isEvent, killAll, type ServerProcess, serveApp, until } from '../helpers/server.js';

after(killAll);
before(assertMatrixInstalled);

const TIMEOUT = { timeout: 300_000 };

/** One GET on a new connection: status and body as text. */
function getText(port: number, urlPath: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: urlPath, agent: false, timeout: 10_000 }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        text += c;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${urlPath}: no answer within 10 s`)));
    req.on('error', reject);
  });
}

function figures(r: LoadResult): string {
  const versions: Record<string, number> = {};
  for (const d of r.done) versions[d.version] = (versions[d.version] ?? 0) + 1;
  return `ok=${r.ok} failed=${r.failed} ${JSON.stringify(r.byKind)} answered by ${JSON.stringify(versions)} p99=${Math.round(r.p99)}ms max=${Math.round(r.maxMs)}ms`;
}

/**
 * Under load on `loadPath` (answers `{ version, pid }`): SIGUSR1 to v2, then SIGUSR2 to v3. Not one
 * request fails; once a restart is done only its release answers, and after the hot restart's first v3
 * answer no request sent later gets v2 (old and new code never serve side by side).
 */
async function restartsUnderLoad(
  t: TestContext,
  srv: ServerProcess,
  port: number,
  root: string,
  loadPath: string,
): Promise<void> {
  const load = new Load({ port, path: loadPath, keepAlive: 3, newConnection: 2 });
  let result: LoadResult | undefined;
  try {
    await load.warmedUp(2, 20_000);
    for (const [kind, version] of [
      ['phased', 'v2'],
      ['hot', 'v3'],
    ] as const) {
      const started = now();
      const { line } = await restart(srv, kind, { release: { root, version }, deadlineMs: 60_000 });
      const doneAt = srv.receivedAt(line);
      t.diagnostic(`${kind} restart to ${version}: ${Math.round(doneAt - started)} ms, signal to done`);
      await load.roundsSince(now(), 3, 20_000);
      const late = load.done.filter((d) => d.start > doneAt && d.version !== version);
      assert.deepEqual(late.slice(0, 3), [], `only ${version} answers once the ${kind} restart is done`);
    }
  } finally {
    result = await load.stop();
    t.diagnostic(`load: ${figures(result)}`);
  }
  assert.equal(result.failed, 0, `failed requests: ${JSON.stringify(result.failures.slice(0, 5))}`);
  for (const v of ['v1', 'v2', 'v3'])
    assert.ok(
      result.done.some((d) => d.version === v),
      `${v} answered`,
    );
  const byTime = [...result.done].sort((a, b) => a.end - b.end);
  const firstV3 = byTime.find((d) => d.version === 'v3')!;
  const v2Later = byTime.filter((d) => d.start > firstV3.end && d.version === 'v2');
  assert.deepEqual(v2Later.slice(0, 3), [], 'v2 answered a request sent after v3 had answered');
}

/**
 * The whole process group gets `signal` (Ctrl-C sends SIGINT to it, systemd's default KillMode sends
 * SIGTERM to every process) with 6 slow requests in flight: all complete, the server exits 0, and no
 * worker is reported leaving or replaced.
 */
async function groupStop(
  t: TestContext,
  srv: ServerProcess,
  port: number,
  slowPath: string,
  signal: NodeJS.Signals,
): Promise<void> {
  const inFlight = Array.from({ length: 6 }, () => getJson(port, slowPath));
  await new Promise((r) => setTimeout(r, 300));
  const mark = srv.lines.length;
  const started = now();
  process.kill(-srv.pid, signal);
  const replies = await Promise.allSettled(inFlight);
  const statuses = replies.map((r) => (r.status === 'fulfilled' ? r.value.status : String(r.reason)));
  const exit = await srv.waitExit(30_000);
  t.diagnostic(
    `group ${signal}: ${statuses.filter((s) => s === 200).length} of 6 slow requests completed, exit ${exit.signal ?? exit.code} after ${Math.round(now() - started)} ms`,
  );
  assert.deepEqual(statuses, Array(6).fill(200), 'every request in flight completed');
  assert.deepEqual(exit, { code: 0, signal: null });
  const bad = srv.lines
    .slice(mark)
    .filter(
      (l) =>
        isEvent(
          l,
          'worker.leaving',
          'worker.memory.exceeded',
          'worker.protocol.broken',
          'worker.replaced',
          'worker.replace.failed',
          'worker.spawned',
          'worker.exited',
        ) || /ERR_SERVER_NOT_RUNNING/.test(String(l.msg)),
    )
    .map((l) => String(l.msg));
  assert.deepEqual(bad, [], 'no worker left, was replaced or spawned during the stop');
  assert.doesNotMatch(srv.stderr, /ERR_SERVER_NOT_RUNNING|Error/);
}

test(
  'Next.js standalone server.js, -w 2: phased and hot restarts to new builds under load, 0 failed; a group SIGTERM drains',
  TIMEOUT,
  async (t) => {
    const work = matrixWorkDir(t);
    const appDir = path.join(work, 'app');
    let serverDir = '';
    for (const v of ['v1', 'v2', 'v3']) {
      const built = await buildStandaloneRelease(work, appDir, v);
      serverDir = built.serverDir;
      t.diagnostic(`next build (standalone) ${v}: ${built.ms} ms`);
    }
    switchRelease(work, 'v1');
    // Next's standalone server.js listens on $PORT through listen-compat; its own SIGTERM handler (it
    // calls process.exit) is held until nserve's drain is done.
    const { srv, port } = await serveApp(t, 'server.js', {
      directory: path.join(work, 'current', serverDir),
      workers: 2,
      env: NEXT_ENV,
    });
    const page = await getText(port, '/');
    assert.equal(page.status, 200);
    assert.match(page.text, /release v1 from/);
    // The static files copied beside server.js (as Next's docs say to) are served.
    const chunk = /\/_next\/static\/[^"]+\.js/.exec(page.text)?.[0];
    assert.ok(chunk !== undefined, 'the page links a script under /_next/static');
    assert.equal((await getText(port, chunk)).status, 200, `GET ${chunk}`);

    await restartsUnderLoad(t, srv, port, work, '/api/version');
    assert.match((await getText(port, '/')).text, /release v3 from/, 'the page is the new build');
    await groupStop(t, srv, port, '/api/slow', 'SIGTERM');
  },
);

test(
  'next start through -- ARGS, -w 2: phased and hot restarts to new builds under load, 0 failed; a group SIGINT drains',
  TIMEOUT,
  async (t) => {
    const work = matrixWorkDir(t);
    // A release is a whole Next.js project built in place (`next build`, then `next start` there).
    for (const v of ['v1', 'v2', 'v3']) {
      const dir = path.join(work, 'releases', v);
      writeNextApp(dir, v, { standalone: false });
      t.diagnostic(`next build ${v}: ${(await nextBuild(dir)).ms} ms`);
    }
    switchRelease(work, 'v1');
    // NEXT_MANUAL_SIG_HANDLE=1, as docs/frameworks.md recommends: Next installs no signal handler.
    const { srv, port } = await serveApp(t, NEXT_BIN, {
      directory: path.join(work, 'current'),
      workers: 2,
      env: { ...NEXT_ENV, NEXT_MANUAL_SIG_HANDLE: '1' },
      args: ['--', 'start'],
    });
    assert.match((await getText(port, '/')).text, /release v1 from/);
    await restartsUnderLoad(t, srv, port, work, '/api/version');
    assert.match((await getText(port, '/')).text, /release v3 from/, 'the page is the new build');
    await groupStop(t, srv, port, '/api/slow', 'SIGINT');
  },
);

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  test(
    `NestJS (enableShutdownHooks), -w 2: phased and hot restarts to new builds under load, 0 failed; a group ${signal} drains`,
    TIMEOUT,
    async (t) => {
      const work = matrixWorkDir(t);
      for (const v of ['v1', 'v2', 'v3'])
        t.diagnostic(`tsc ${v}: ${(await buildNestRelease(work, v)).ms} ms`);
      switchRelease(work, 'v1');
      const { srv, port } = await serveApp(t, 'dist/main.js', {
        directory: path.join(work, 'current'),
        workers: 2,
      });
      assert.equal((await getJson(port, '/')).body.version, 'v1');
      await restartsUnderLoad(t, srv, port, work, '/');
      assert.equal((await getJson(port, '/')).body.version, 'v3');
      await groupStop(t, srv, port, '/slow', signal);
    },
  );
}

test(
  'socket.io with onDrain(() => io.close()), -w 2 --balance ip-hash: WebSocket and polling clients through a hot restart; the app closes them all itself, HTTP waits < 2 s, none fails, all reconnect',
  TIMEOUT,
  async (t) => {
    const { srv, port } = await serveApp(t, path.join(FIXTURES, 'socketio/app-drain.mjs'), {
      workers: 2,
      args: ['--balance', 'ip-hash'],
    });
    const clients = ['websocket', 'polling', 'websocket', 'polling', 'websocket', 'polling'].map((kind) => {
      // The default client (polling, then the upgrade to a WebSocket), or polling only (behind proxies).
      const socket: Socket = io(`http://127.0.0.1:${port}`, {
        ...(kind === 'polling' ? { transports: ['polling'] } : {}),
        reconnectionDelay: 200,
      });
      const c = { kind, socket, connects: 0 };
      socket.on('connect', () => {
        c.connects++;
      });
      t.after(() => socket.close());
      return c;
    });
    await until('every client connected', () => clients.every((c) => c.socket.connected), 15_000);
    await until(
      'the default clients upgraded to WebSocket',
      () => clients.every((c) => c.kind === 'polling' || c.socket.io.engine.transport.name === 'websocket'),
      15_000,
    );
    await new Promise((r) => setTimeout(r, 500)); // every polling client in its held GET
    const load = new Load({ port, keepAlive: 2, newConnection: 2 });
    let result: LoadResult | undefined;
    let drained: Record<string, unknown>[] = [];
    try {
      await load.roundsSince(now(), 3);
      const outcome = await restart(srv, 'hot', { deadlineMs: 20_000 });
      drained = outcome.lines.filter((l) => isEvent(l, 'drain.done'));
      await load.roundsSince(now(), 3);
    } finally {
      result = await load.stop();
      t.diagnostic(`load: ${figures(result)}`);
    }
    assert.equal(result.failed, 0, `failed requests: ${JSON.stringify(result.failures.slice(0, 5))}`);
    assert.ok(result.maxMs < 2000, `the longest HTTP wait was ${Math.round(result.maxMs)} ms`);
    t.diagnostic(`drains: ${drained.map((l) => String(l.msg)).join(' | ')}`);
    assert.equal(drained.length, 2, 'both old workers drained');
    for (const l of drained) {
      const longLived = l.longLived as { asked: number; ended: number };
      assert.equal(longLived.ended, 0, `nserve had to end nothing: ${String(l.msg)}`);
      assert.equal(l.longPolls, 0, `no long-poll left for --switch-timeout: ${String(l.msg)}`);
    }
    await until(
      'every client connected again',
      () => clients.every((c) => c.connects >= 2 && c.socket.connected),
      20_000,
    );
    for (const c of clients) {
      const reply = (await c.socket.timeout(5000).emitWithAck('whoami', 'after')) as { text: string };
      assert.equal(reply.text, 'after');
    }
  },
);
