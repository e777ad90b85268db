import assert from 'node:assert/strict';
import * as path from 'node:path';
import { after, test } from 'node:test';
import { controlRequest } from '../helpers/control.js';
import { getJson, Load, stopWithoutFailures } from '../helpers/load.js';
import { now } from '../helpers/logged-process.js';
import { type Scrape, samples, scrape, total } from '../helpers/metrics.js';
import { restart } from '../helpers/restart.js';
import {
  childPids,
  killAll,
  runNserve,
  type ServerProcess,
  serveApp,
  tmpDir,
  until,
} from '../helpers/server.js';

after(killAll);

const METRICS = ['--metrics-url', 'tcp://127.0.0.1:0'];

async function metricsPort(srv: ServerProcess): Promise<number> {
  const line = await srv.waitForEvent('metrics.listener.serving', 20_000);
  const url = String(line.url);
  return Number(url.slice(url.lastIndexOf(':') + 1));
}

/** Prometheus' own parser (promtool) checks the same scrapes in `npm run test:tools` (test/tools/). */
function assertFormat(s: Scrape): void {
  assert.equal(s.status, 200, s.text.slice(0, 200));
  assert.match(s.contentType, /^text\/plain; version=0\.0\.4/);
  assert.ok(samples(s.text).size > 0, 'samples parse');
}

test('-w 2 under load: /metrics answers on the dedicated listener and the control server; request counters count every request', async (t) => {
  const dir = tmpDir(t);
  const socket = path.join(dir, 'ctl.sock');
  const { srv, port } = await serveApp(t, 'examples/hello.mjs', {
    workers: 2,
    args: [...METRICS, '--control-url', `unix://${socket}`, '--control-token', 'sekret'],
  });
  const mport = await metricsPort(srv);
  // Exact counts first, with nothing else running: 40 requests, all 2xx.
  const before = total((await scrape(mport)).text, 'nserve_http_requests_total');
  for (let i = 0; i < 40; i++) assert.equal((await getJson(port)).status, 200);
  const exact = await scrape(mport);
  assert.equal(total(exact.text, 'nserve_http_requests_total') - before, 40);
  assert.equal(total(exact.text, 'nserve_http_requests_total', { code: '2xx' }) - before, 40);
  assert.equal(total(exact.text, 'nserve_http_request_duration_seconds_count') - before, 40);
  assert.equal(total(exact.text, 'nserve_metrics_workers_unanswered'), 0);
  assert.equal(total(exact.text, 'nserve_workers', { state: 'booted' }), 2);
  // Per-worker series: both workers, their process metrics labelled by worker and pid.
  const pids = childPids(srv.pid);
  for (const pid of pids)
    assert.ok(total(exact.text, 'process_resident_memory_bytes', { pid: String(pid) }) > 0, `RSS of ${pid}`);
  assert.ok(total(exact.text, 'process_resident_memory_bytes', { worker: 'master' }) > 0);

  const load = new Load({ port, keepAlive: 4, newConnection: 2 });
  try {
    await load.roundsSince(now(), 3);
    const under = await scrape(mport);
    assertFormat(under);
    assert.ok(total(under.text, 'nserve_http_requests_in_flight') >= 0);
    assert.ok(samples(under.text).has('nserve_http_open_connections{kind="idle",worker="0"}'));
    // The control server: same metrics, with the token; without it 403, and the server is unharmed.
    const viaControl = await scrape(socket, { token: 'sekret' });
    assertFormat(viaControl);
    assert.ok(
      total(viaControl.text, 'nserve_http_requests_total') >= total(under.text, 'nserve_http_requests_total'),
    );
    assert.equal((await scrape(socket)).status, 403);
    assert.equal((await controlRequest(socket, 'GET', '/metrics', { token: 'wrong' })).status, 403);
    // The dedicated listener is read-only: only GET /metrics.
    assert.equal((await scrape(mport, { path: '/stats' })).status, 404);
  } finally {
    const result = await stopWithoutFailures(load, t);
    await until('the workers to report their last requests', async () => {
      const s = await scrape(mport);
      return total(s.text, 'nserve_http_requests_total') - before === 40 + result.ok;
    });
  }
  assert.deepEqual(childPids(srv.pid).sort(), pids.sort(), 'no worker was replaced by a scrape');
});

test('-w 2: a phased and a hot restart under load and a scrape loop: no failed scrape, counters never go back, restarts counted', async (t) => {
  const { srv, port } = await serveApp(t, 'examples/hello.mjs', { workers: 2, args: METRICS });
  const mport = await metricsPort(srv);
  const load = new Load({ port, keepAlive: 4, newConnection: 2 });
  const seen = new Map<string, number>();
  const problems: string[] = [];
  let scrapes = 0;
  let running = true;
  const loop = (async () => {
    while (running) {
      try {
        const s = await scrape(mport, { timeoutMs: 5000 });
        if (s.status !== 200) problems.push(`status ${s.status}`);
        scrapes++;
        for (const [key, value] of samples(s.text)) {
          if (!key.startsWith('nserve_http_requests_total') && !key.startsWith('nserve_restarts_total'))
            continue;
          const prev = seen.get(key) ?? 0;
          if (value < prev) problems.push(`${key} went back from ${prev} to ${value}`);
          seen.set(key, value);
        }
      } catch (err) {
        problems.push(`scrape failed: ${String(err)}`);
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  })();
  let result: Awaited<ReturnType<typeof stopWithoutFailures>>;
  try {
    await load.roundsSince(now(), 3);
    await restart(srv, 'phased');
    await load.roundsSince(now(), 3);
    const { line } = await restart(srv, 'hot', { deadlineMs: 30_000 });
    assert.equal(typeof line.pauseMs, 'number');
    await load.roundsSince(now(), 3);
  } finally {
    result = await stopWithoutFailures(load, t);
    running = false;
    await loop;
  }
  assert.deepEqual(problems, []);
  assert.ok(scrapes >= 5, `the scrape loop ran (${scrapes} scrapes)`);
  let counted = 0;
  const last = await until('the counters to include every request', async () => {
    const s = await scrape(mport);
    counted = total(s.text, 'nserve_http_requests_total');
    // Every request, the last ones of each old worker included: a worker's final totals come after its
    // `drained`, and a channel whose peer is gone is read to the end before it closes (channel.ts).
    assert.ok(counted <= result.ok, `counted ${counted}, more than the ${result.ok} answered`);
    return counted === result.ok ? s : undefined;
  }).catch((err: unknown) => {
    throw new Error(`${String(err)}: counted ${counted}, the load got ${result.ok} answers`);
  });
  assertFormat(last);
  assert.equal(total(last.text, 'nserve_restarts_total', { kind: 'phased', result: 'ok' }), 1);
  assert.equal(total(last.text, 'nserve_restarts_total', { kind: 'hot', result: 'ok' }), 1);
  assert.equal(total(last.text, 'nserve_generation'), 2);
  assert.equal(total(last.text, 'nserve_worker_info', { generation: '2' }), 2);
  assert.equal(total(last.text, 'nserve_worker_info', { generation: '1' }), 0);
  assert.ok(samples(last.text).has('nserve_last_restart_pause_seconds{kind="hot"}'), 'the pause is reported');
  assert.equal(total(last.text, 'nserve_mixed_versions'), 0);
  // Four old workers drained and left (2 phased + 2 hot), and nothing else.
  assert.equal(total(last.text, 'nserve_worker_exits_total', { reason: 'drained' }), 4);
  assert.equal(total(last.text, 'nserve_worker_exits_total'), 4);
  t.diagnostic(`${scrapes} scrapes, ${result.ok} requests, 0 failed`);
});

test('the accept-queue gauge rises while the workers are stopped (SIGSTOP)', async (t) => {
  const { srv, port } = await serveApp(t, 'examples/hello.mjs', { workers: 2, args: METRICS });
  const mport = await metricsPort(srv);
  await scrape(mport); // starts the sampler
  const workers = childPids(srv.pid);
  const pending: Promise<unknown>[] = [];
  try {
    for (const pid of workers) process.kill(pid, 'SIGSTOP');
    for (let i = 0; i < 10; i++) pending.push(getJson(port, '/', { timeoutMs: 20_000 }));
    const s = await until('connections to queue', async () => {
      const m = await scrape(mport);
      return total(m.text, 'nserve_listen_queue_depth') >= 10 ? m : undefined;
    });
    assert.ok(total(s.text, 'nserve_listen_queue_depth_max') >= 10);
    assert.equal(total(s.text, 'nserve_listen_backlog'), Math.min(1024, Number(await somaxconn())));
  } finally {
    for (const pid of workers) process.kill(pid, 'SIGCONT');
  }
  for (const r of await Promise.all(pending)) assert.equal((r as { status: number }).status, 200);
  const after = await scrape(mport);
  assert.equal(total(after.text, 'nserve_listen_queue_depth'), 0);
  // The maximum since the previous scrape: the queue was full before that one, not since.
  assert.equal(total((await scrape(mport)).text, 'nserve_listen_queue_depth_max'), 0);
});

async function somaxconn(): Promise<string> {
  const fs = await import('node:fs');
  return fs.readFileSync('/proc/sys/net/core/somaxconn', 'utf8').trim();
}

test('single mode: the dedicated listener answers throughout a hot restart, and request counters carry over', async (t) => {
  const { srv, port } = await serveApp(t, 'examples/hello.mjs', { args: METRICS });
  const mport = await metricsPort(srv);
  for (let i = 0; i < 25; i++) await getJson(port);
  assert.equal(total((await scrape(mport)).text, 'nserve_http_requests_total', { worker: 'single' }), 25);
  const failures: string[] = [];
  let running = true;
  let scrapes = 0;
  const loop = (async () => {
    while (running) {
      try {
        const s = await scrape(mport);
        if (s.status !== 200) failures.push(`status ${s.status}`);
        scrapes++;
      } catch (err) {
        failures.push(String(err));
      }
      await new Promise((r) => setTimeout(r, 10));
    }
  })();
  try {
    await restart(srv, 'hot');
    await new Promise((r) => setTimeout(r, 200));
  } finally {
    running = false;
    await loop;
  }
  assert.deepEqual(failures, []);
  for (let i = 0; i < 5; i++) await getJson(port);
  const s = await scrape(mport);
  assertFormat(s);
  assert.equal(total(s.text, 'nserve_http_requests_total', { worker: 'single' }), 30);
  assert.equal(total(s.text, 'nserve_restarts_total', { kind: 'hot', result: 'ok' }), 1);
  assert.ok(total(s.text, 'nserve_last_restart_pause_seconds') > 0);
  t.diagnostic(`${scrapes} scrapes across the hot restart, none failed`);
});

test('bad --metrics-url and a busy port: one line, exit 2', async () => {
  for (const [url, expect] of [
    [
      'http://127.0.0.1:9100',
      /^nserve: error: invalid --metrics-url: "http:\/\/127\.0\.0\.1:9100": expected tcp:\/\/HOST:PORT/,
    ],
    [
      'tcp://127.0.0.1:99999',
      /^nserve: error: invalid --metrics-url: "tcp:\/\/127\.0\.0\.1:99999": expected tcp/,
    ],
    ['unix:///tmp/m.sock', /^nserve: error: invalid --metrics-url: "unix:\/\/\/tmp\/m\.sock"/],
  ] as const) {
    const r = await runNserve([
      'start',
      'examples/hello.mjs',
      '--bind',
      'tcp://127.0.0.1:0',
      '--metrics-url',
      url,
    ]);
    assert.equal(r.code, 2, r.stderr);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.match(r.stderr, expect);
  }
  const net = await import('node:net');
  const busy = net.createServer();
  await new Promise<void>((r) => busy.listen(0, '127.0.0.1', r));
  try {
    const taken = (busy.address() as { port: number }).port;
    const r = await runNserve([
      'start',
      'examples/hello.mjs',
      '-w',
      '2',
      '--bind',
      'tcp://127.0.0.1:0',
      '--metrics-url',
      `tcp://127.0.0.1:${taken}`,
    ]);
    assert.equal(r.code, 2, r.stderr);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.match(r.stderr, /invalid --metrics-url tcp:\/\/127\.0\.0\.1:\d+: address already in use/);
  } finally {
    busy.close();
  }
});
