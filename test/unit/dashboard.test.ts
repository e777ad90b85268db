// The dashboard's view model (rates, restarts, memory), its terminal rendering at 80 columns, its login
// tokens and sessions, and its cross-site check: without processes.
import assert from 'node:assert/strict';
import type * as http from 'node:http';
import { test } from 'node:test';
import * as vm from 'node:vm';
import type { Stats, WorkerView } from '../../src/control/status.js';
import { PAGE_CSP, PAGE_HTML } from '../../src/dashboard/page.js';
import { PAGE_SCRIPT } from '../../src/dashboard/page-script.js';
import { crossSite } from '../../src/dashboard/routes.js';
import { renderTop } from '../../src/dashboard/text.js';
import {
  checkLoginToken,
  checkSession,
  LOGIN_TTL_MS,
  makeLoginToken,
  makeSession,
  SESSION_TTL_MS,
  UsedLogins,
} from '../../src/dashboard/token.js';
import { buildView, HISTORY_MS, latencyBetween, Samples, sampleOf } from '../../src/dashboard/view.js';
import { DURATION_BUCKETS, type Durations } from '../../src/metrics/requests.js';

const T0 = Date.parse('2026-12-01T10:00:00Z');

function worker(index: number, pid: number, requests: number, over: Partial<WorkerView> = {}): WorkerView {
  return {
    index,
    pid,
    phase: 1,
    state: 'booted',
    booted: true,
    startedAt: null,
    lastCheckin: new Date(T0).toISOString(),
    requests,
    inFlight: 1,
    longLived: 0,
    eventLoopDelayP99Ms: 2,
    rss: 50 * 1024 * 1024,
    crashes: 0,
    directory: '/srv/app/releases/v42',
    slots: ['tcp://127.0.0.1:3000#0'],
    ...over,
  };
}

function stats(lifetime: number, workers: WorkerView[], over: Partial<Stats> = {}): Stats {
  return {
    version: '0.1.0',
    mode: 'cluster',
    pid: 100,
    startedAt: new Date(T0).toISOString(),
    phase: 1,
    state: 'running',
    requests: 0,
    inFlight: workers.reduce((a, w) => a + w.inFlight, 0),
    lifetime: {
      requests: lifetime,
      workerCrashes: 0,
      restarts: { hot: 1, phased: 0 },
      memoryReplacements: 0,
    },
    directory: '/srv/app/releases/v42',
    longLived: 0,
    workers,
    restarts: [],
    listeners: [],
    fdCount: 20,
    ...over,
  };
}

test('rates: per worker and in total, against the previous sample; a new PID has no rate yet', () => {
  const before = stats(1000, [worker(0, 11, 400), worker(1, 12, 600)]);
  const samples = [sampleOf(before, T0)];
  // 2 s later: worker 11 served 200 more, worker 12 was replaced by 13 (which served 50).
  const now = stats(1250, [worker(0, 11, 600), worker(1, 13, 50)]);
  const v = buildView(now, T0 + 2000, samples);
  assert.equal(v.totals.rps, 125);
  assert.deepEqual(
    v.workers.map((w) => [w.pid, w.rps]),
    [
      [11, 100],
      [13, null],
    ],
  );
  assert.equal(v.workers[0]!.release, 'v42');
  assert.equal(v.series.length, 1);
  assert.equal(v.series[0]!.rps, 125);
  // Nothing before: no rate at all, not a made-up zero.
  assert.equal(buildView(now, T0, []).totals.rps, null);
});

/** Durations: `n` requests of `msEach` ms, counted in the default buckets (0.005, 0.01, 0.025 … s). */
function durations(n: number, msEach: number, base?: Durations): Durations {
  const buckets = [...(base?.buckets ?? new Array<number>(12).fill(0))];
  const i = DURATION_BUCKETS.findIndex((b) => msEach / 1000 <= b);
  buckets[i === -1 ? 11 : i]! += n;
  return { count: (base?.count ?? 0) + n, sum: (base?.sum ?? 0) + (n * msEach) / 1000, buckets };
}

test('latency: the mean and the p99 bucket of the requests answered between two samples; a counter that went down counts from zero', () => {
  const a = durations(1000, 3);
  // 1 s later: 98 more at 3 ms and 2 at 40 ms: mean 3.74 ms, 99% within the 50 ms bucket.
  const b = durations(2, 40, durations(98, 3, a));
  const before = stats(1000, [worker(0, 11, 1000)], { durations: a });
  const now = stats(1100, [worker(0, 11, 1100)], { durations: b });
  const v = buildView(now, T0 + 1000, [sampleOf(before, T0)]);
  assert.equal(v.totals.latencyMs?.toFixed(2), '3.74');
  assert.equal(v.totals.p99Ms, 50);
  assert.equal(v.series[0]!.latencyMs?.toFixed(2), '3.74');
  assert.deepEqual(latencyBetween(b, b), { latencyMs: null, p99Ms: null }, 'no request: no latency');
  assert.deepEqual(latencyBetween(null, null), { latencyMs: null, p99Ms: null }, 'not counted');
  // A single-mode hot restart counts from zero: 10 requests of 1 ms since.
  assert.equal(latencyBetween(b, durations(10, 1)).latencyMs, 1);
  // Over the last bucket (10 s): no bound to show.
  assert.equal(latencyBetween(null, durations(5, 20_000)).p99Ms, null);
  const top = renderTop(v, { state: 'live', url: 'tcp://127.0.0.1:9999' }).join('\n');
  assert.match(top, /^latency 3\.7 ms mean · p99 ≤ 50 ms/m);
});

test('restarts become bars from signal to done, with pause, kind, verdict and canary', () => {
  const s = stats(0, [], {
    restarts: [
      {
        id: 1,
        kind: 'hot',
        started: '2026-12-01T10:00:01.000Z',
        finished: '2026-12-01T10:00:02.500Z',
        outcome: 'ok',
        error: null,
        pauseMs: 40,
        release: { directory: '/srv/app/releases/v43', version: '4.3.0' },
      },
      {
        id: 2,
        kind: 'phased',
        started: '2026-12-01T10:01:00.000Z',
        finished: null,
        outcome: 'in-progress',
        error: null,
        canary: { ok: true, inconclusive: false, summary: '0/500 5xx vs 1/900' },
      },
    ],
  });
  const [hot, phased] = buildView(s, T0 + 120_000, []).restarts;
  assert.deepEqual(hot, {
    id: 1,
    kind: 'hot',
    outcome: 'ok',
    rollback: false,
    start: T0 + 1000,
    end: T0 + 2500,
    pauseMs: 40,
    release: '4.3.0',
    canary: null,
    error: null,
  });
  assert.equal(phased!.end, null);
  assert.equal(phased!.canary, '0/500 5xx vs 1/900');
});

test('Samples: polls closer than 900 ms share a sample; history is bounded to 5 minutes', () => {
  const samples = new Samples();
  let requests = 0;
  let at = T0;
  for (let i = 0; i < 400; i++) {
    requests += 10;
    at += 1000;
    const v = samples.view(stats(requests, []), at);
    if (i > 0) assert.equal(v.totals.rps, 10);
  }
  const v = samples.view(stats(requests + 5, []), at + 300);
  // 5 more requests over 1.3 s since the sample before the newest (15 requests): never a 0 ms interval.
  assert.ok(v.totals.rps !== null && Math.abs(v.totals.rps - 15 / 1.3) < 0.01, String(v.totals.rps));
  assert.ok(v.series.length <= HISTORY_MS / 1000 + 1, `${v.series.length} points`);
});

test('nserve top at 80 columns: every line fits, both workers and the restart are there', () => {
  const s = stats(5000, [worker(0, 4242, 10), worker(1, 4343, 20)], {
    memory: {
      cgroup: 'v2',
      path: '/app',
      limit: 512 * 1024 * 1024,
      limited: true,
      usage: 300 * 1024 * 1024,
      workingSet: 256 * 1024 * 1024,
      headroom: 256 * 1024 * 1024,
      oomKills: 0,
      oomGroup: false,
    },
    restarts: [
      {
        id: 7,
        kind: 'hot',
        started: '2026-12-01T10:00:01.000Z',
        finished: '2026-12-01T10:00:02.000Z',
        outcome: 'ok',
        error: null,
        pauseMs: 12,
      },
    ],
  });
  const lines = renderTop(buildView(s, T0 + 5000, [sampleOf(s, T0 + 4000)]), {
    state: 'live',
    url: 'tcp://127.0.0.1:9999',
  });
  for (const l of lines) assert.ok([...l].length <= 80, `${[...l].length} columns: ${l}`);
  const text = lines.join('\n');
  assert.match(text, /^\[live\]/);
  assert.match(text, / 4242 /);
  assert.match(text, / 4343 /);
  assert.match(text, /#7 .* hot .* ok .*1\.0 s {2}pause 12 ms/);
  assert.match(text, /memory \[#{10}\.{10}\] 256M of limit 512M/);
  const away = renderTop(undefined, { state: 'restarting', url: 'tcp://x', detail: 'no answer for 0.4 s' });
  assert.match(away.join('\n'), /\[restarting…\][\s\S]*no answer for 0\.4 s/);
});

test('login tokens: made with the control token, expire, are refused with another token or altered', () => {
  const token = makeLoginToken('control-secret', T0);
  assert.deepEqual(checkLoginToken('control-secret', token, T0 + 1000), {
    ok: true,
    expiry: T0 + LOGIN_TTL_MS,
  });
  assert.deepEqual(checkLoginToken('other-secret', token, T0 + 1000), { ok: false, reason: 'wrong' });
  assert.deepEqual(checkLoginToken('control-secret', token, T0 + LOGIN_TTL_MS), {
    ok: false,
    reason: 'expired',
  });
  // A later expiry with the old MAC: wrong.
  const [v, , nonce, mac] = token.split('.');
  const forged = [v, String(T0 + 10 * LOGIN_TTL_MS), nonce, mac].join('.');
  assert.deepEqual(checkLoginToken('control-secret', forged, T0), { ok: false, reason: 'wrong' });
  assert.deepEqual(checkLoginToken('control-secret', 'garbage', T0), { ok: false, reason: 'malformed' });
  // A session is not a login token, and the other way round.
  const session = makeSession('control-secret', T0).value;
  assert.equal(checkLoginToken('control-secret', session, T0).ok, false);
  assert.equal(checkSession('control-secret', token, T0).ok, false);
  assert.equal(checkSession('control-secret', session, T0 + SESSION_TTL_MS - 1).ok, true);
  assert.equal(checkSession('control-secret', session, T0 + SESSION_TTL_MS).ok, false);
  assert.equal(checkSession('other-secret', session, T0).ok, false);
});

test('a login token works once (in one image)', () => {
  const used = new UsedLogins();
  assert.equal(used.claim('a', T0 + 1000, T0), true);
  assert.equal(used.claim('a', T0 + 1000, T0 + 10), false);
  assert.equal(used.claim('b', T0 + 1000, T0 + 10), true);
});

test('cross-site: Sec-Fetch-Site other than same-origin/none, or a foreign Origin, is refused', () => {
  const req = (headers: http.IncomingHttpHeaders) => ({ headers }) as http.IncomingMessage;
  assert.equal(crossSite(req({ host: '127.0.0.1:9' })), undefined);
  assert.equal(crossSite(req({ host: '127.0.0.1:9', 'sec-fetch-site': 'none' })), undefined);
  assert.equal(crossSite(req({ host: '127.0.0.1:9', 'sec-fetch-site': 'same-origin' })), undefined);
  assert.equal(crossSite(req({ host: '127.0.0.1:9', origin: 'http://127.0.0.1:9' })), undefined);
  assert.match(String(crossSite(req({ host: '127.0.0.1:9', 'sec-fetch-site': 'cross-site' }))), /cross-site/);
  assert.match(String(crossSite(req({ host: '127.0.0.1:9', 'sec-fetch-site': 'same-site' }))), /same-site/);
  assert.equal(crossSite(req({ host: '127.0.0.1:9', origin: 'http://evil.example' })), 'Origin');
});

test('the page is self-contained: its inline script and style are the only ones the CSP allows', () => {
  assert.ok(PAGE_HTML.length < 40_000, `${PAGE_HTML.length} bytes`);
  assert.doesNotMatch(PAGE_HTML, /https?:\/\/(?!www\.w3\.org\/2000\/svg)/);
  assert.doesNotMatch(PAGE_HTML, /innerHTML|eval\(/);
  assert.match(PAGE_CSP, /^default-src 'none'; script-src 'sha256-[^ ]+'; style-src 'sha256-[^ ]+';/);
  assert.match(PAGE_CSP, /frame-ancestors 'none'/);
  assert.doesNotMatch(PAGE_CSP, /unsafe/);
  // The script parses (a syntax error would leave the page blank), and declares no global that the
  // browser already has read-only (a strict-mode \`history = …\` throws).
  new vm.Script(PAGE_SCRIPT);
  for (const name of ['history', 'location', 'name', 'status', 'top', 'parent', 'self', 'length'])
    assert.doesNotMatch(PAGE_SCRIPT, new RegExp(`^var ${name}\\b`, 'm'), name);
});
