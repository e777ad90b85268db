// The request counter is exact: every request a worker answered is in `nserve_http_requests_total`,
// whichever way the worker went (hot restart, phased restart, scale-down) and whoever read its last report
// (the master image before or after a hot restart's exec). The client counts what it got; the server's
// counter must say the same, not "about" the same.
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { Load, stopWithoutFailures } from '../helpers/load.js';
import { now } from '../helpers/logged-process.js';
import { samples, scrape, total } from '../helpers/metrics.js';
import { restart } from '../helpers/restart.js';
import { childPids, killAll, type ServerProcess, serveApp, until } from '../helpers/server.js';

after(killAll);

async function metricsPort(srv: ServerProcess): Promise<number> {
  const line = await srv.waitForEvent('metrics.listener.serving', 20_000);
  const url = String(line.url);
  return Number(url.slice(url.lastIndexOf(':') + 1));
}

/** Samples whose value is not a number (prom-client writes NaN as `Nan`). */
function notNumbers(text: string): string[] {
  return [...samples(text)].filter(([, v]) => Number.isNaN(v)).map(([k]) => k);
}

test('-w 2 under load through hot, phased and hot restarts and a scale-down: the request counter equals the answers the client got', async (t) => {
  const { srv, port } = await serveApp(t, 'examples/hello.mjs', {
    workers: 2,
    args: ['--metrics-url', 'tcp://127.0.0.1:0'],
  });
  const mport = await metricsPort(srv);
  const nan = new Set<string>();
  // Scrapes all along, fast: a worker asked for metrics as it exits is the path where its last words
  // were lost (and the master's first scrape after each exec is where the event-loop gauges were NaN).
  let running = true;
  let scrapes = 0;
  const scrapeLoop = async (): Promise<void> => {
    while (running) {
      try {
        const s = await scrape(mport, { timeoutMs: 5000 });
        scrapes++;
        for (const k of notNumbers(s.text)) nan.add(k);
      } catch {
        // a scrape cut by the stop, or by nothing asserted here (metrics.test.ts: none fails)
      }
      await new Promise((r) => setTimeout(r, 5));
    }
  };
  const loop = scrapeLoop();
  const load = new Load({ port, keepAlive: 4, newConnection: 2 });
  let answered: number;
  try {
    await load.warmedUp(3);
    await restart(srv, 'hot', { deadlineMs: 30_000 });
    await load.roundsSince(now(), 3);
    // Each step follows the last at once: the worker removed by SIGTTOU and the one a phased restart
    // replaced are still draining (or saying their last word) when the next restart begins, and may
    // give it to the master image before the exec or to the one after it.
    const mark = srv.lines.length;
    srv.signal('SIGTTOU');
    await srv.waitForEvent('workers.scaled', 10_000, mark, (l) => l.from === 2 && l.to === 1);
    await restart(srv, 'phased', { deadlineMs: 30_000 });
    await restart(srv, 'hot', { deadlineMs: 30_000 });
    await load.roundsSince(now(), 3);
  } finally {
    answered = (await stopWithoutFailures(load, t)).ok;
    running = false;
    await loop;
  }
  // Every worker that served reports within a heartbeat (1 s); a scrape asks the live ones directly.
  let counted = 0;
  const last = await until(
    'the counter to equal the answers',
    async () => {
      const s = await scrape(mport);
      counted = total(s.text, 'nserve_http_requests_total');
      return counted === answered ? s : undefined;
    },
    3000,
  ).catch(() => {
    throw new Error(`nserve_http_requests_total is ${counted}, the client got ${answered} answers`);
  });
  assert.equal(total(last.text, 'nserve_http_request_duration_seconds_count'), answered);
  // Gone workers: 2 (hot) + 1 (TTOU) + 1 (phased) + 1 (hot), each drained.
  assert.equal(total(last.text, 'nserve_worker_exits_total', { reason: 'drained' }), 5);
  for (const k of notNumbers(last.text)) nan.add(k);
  t.diagnostic(`${answered} answers, counted ${counted}, ${scrapes} scrapes`);

  // The final stop, under load and scrapes: the master waits for each worker's last report and says
  // what was answered in all, the requests served during the stop's drain included.
  running = true;
  const scraping = scrapeLoop();
  const during = new Load({ port, keepAlive: 4 });
  await during.warmedUp(3);
  const mark = srv.lines.length;
  srv.signal('SIGTERM');
  const stopped = await srv.waitForEvent('server.stopped', 30_000, mark);
  await srv.waitExit(10_000);
  const atStop = (await during.stop()).ok;
  running = false;
  await scraping;
  assert.equal(stopped.requests, answered + atStop, 'the stop line counts every request');

  const ebadf = srv.lines.filter((l) => /EBADF/.test(JSON.stringify(l)));
  assert.deepEqual(ebadf, [], 'no EBADF in the log');
  assert.doesNotMatch(srv.stderr, /EBADF/);
  assert.deepEqual([...nan], [], 'no sample is NaN');
});

test('-w 2: a worker killed (SIGKILL) under load: the counter falls short by at most what it answered since its last report, and says so', async (t) => {
  const { srv, port } = await serveApp(t, 'examples/hello.mjs', {
    workers: 2,
    args: ['--metrics-url', 'tcp://127.0.0.1:0'],
  });
  const mport = await metricsPort(srv);
  const load = new Load({ port, keepAlive: 4 });
  const victim = childPids(srv.pid)[0]!;
  let killedAt = 0;
  let result: Awaited<ReturnType<Load['stop']>>;
  try {
    await load.warmedUp(3);
    await new Promise((r) => setTimeout(r, 1500)); // a few reports of the victim's
    killedAt = now();
    process.kill(victim, 'SIGKILL');
    await load.roundsSince(now(), 3, 15_000);
  } finally {
    result = await load.stop();
  }
  const line = await srv.waitForEvent('metrics.report.missing', 10_000);
  assert.equal(line.workerPid, victim);
  const sinceReportMs = Number(line.sinceReportMs);
  assert.ok(sinceReportMs <= 1500, `its last report came ${sinceReportMs} ms before its death`);
  // Answers the client got from the victim after its last report: what may be missing, and no more.
  const late = result.done.filter((d) => d.pid === victim && d.end >= killedAt - sinceReportMs - 50).length;
  let counted = 0;
  await until(
    'the live worker to report',
    async () => {
      counted = total((await scrape(mport)).text, 'nserve_http_requests_total');
      return counted >= result.ok - late;
    },
    3000,
  ).catch(() => {
    throw new Error(`counted ${counted} of ${result.ok} answers; at most ${late} may be missing`);
  });
  assert.ok(counted <= result.ok, `counted ${counted}, more than the ${result.ok} answered`);
  t.diagnostic(
    `${result.ok} answers, counted ${counted}, ${late} answered by the victim since its last report`,
  );
});
