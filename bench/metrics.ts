// Metrics overhead, side by side: keep-alive throughput of the same server with metrics off and on
// (`--metrics-url`, scraped once a second as Prometheus would), as medians of interleaved runs; and the
// RSS a server pays with no metrics configured, with metrics configured but never scraped, and scraped.
//
//   node dist/bench/metrics.js [--runs 5] [--seconds 5] [--workers 0] [--connections 32]
//
// Target (issue 19): throughput with metrics within 3% of without; no RSS cost while nothing scrapes.
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { pickLoadgen, runLoad } from './lib/loadgen.js';
import {
  cleanupAll,
  freePort,
  installCleanupHandlers,
  NSERVE_CLI,
  ROOT,
  sleep,
  startNode,
} from './lib/proc.js';

const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '5' },
    seconds: { type: 'string', default: '5' },
    workers: { type: 'string', default: '0' },
    connections: { type: 'string', default: '32' },
    loadgen: { type: 'string' },
  },
});
const runs = Number(values.runs);
const seconds = Number(values.seconds);
const workers = Number(values.workers);
const connections = Number(values.connections);
const gen = pickLoadgen(values.loadgen);
installCleanupHandlers();

async function server(
  metrics: boolean,
): Promise<{ port: number; mport: number; stop: () => Promise<void>; pid: number }> {
  const port = await freePort();
  const mport = await freePort();
  const srv = startNode(NSERVE_CLI, [
    'start',
    path.join(ROOT, 'examples/hello.mjs'),
    '--bind',
    `tcp://127.0.0.1:${port}`,
    ...(workers > 0 ? ['-w', String(workers)] : []),
    ...(metrics ? ['--metrics-url', `tcp://127.0.0.1:${mport}`] : []),
    '--log-level',
    'warn',
  ]);
  // The boot line is at info: wait for the port instead.
  for (let i = 0; i < 200; i++) {
    if (
      await get(port, '/').then(
        () => true,
        () => false,
      )
    )
      break;
    await sleep(50);
  }
  return { port, mport, pid: srv.pid, stop: () => srv.stop() };
}

function get(port: number, p: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: p, agent: false }, (res) => {
      let t = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        t += c;
      });
      res.on('end', () => resolve(t));
    });
    req.on('error', reject);
    req.setTimeout(5000, () => req.destroy(new Error('timeout')));
  });
}

function rssKiB(pid: number): number {
  const m = /VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m?.[1] ?? 0);
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? 0;
};

async function throughput(metrics: boolean): Promise<number> {
  const s = await server(metrics);
  try {
    await runLoad(gen, { port: s.port, connections, seconds: 1, close: false }); // warm-up
    let scraping = metrics;
    const scraper = (async () => {
      while (scraping) {
        await get(s.mport, '/metrics').catch(() => {});
        await sleep(1000);
      }
    })();
    const r = await runLoad(gen, { port: s.port, connections, seconds, close: false });
    scraping = false;
    await scraper;
    if (r.errors > 0 || r.non2xx > 0) throw new Error(`errors under load: ${r.errorDetail}`);
    return r.rps;
  } finally {
    await s.stop();
  }
}

async function main(): Promise<void> {
  const off: number[] = [];
  const on: number[] = [];
  for (let i = 0; i < runs; i++) {
    // Interleaved, alternating which goes first, so drift on the machine hits both alike.
    for (const metrics of i % 2 === 0 ? [false, true] : [true, false]) {
      const rps = await throughput(metrics);
      (metrics ? on : off).push(rps);
      process.stdout.write(`run ${i + 1} metrics ${metrics ? 'on ' : 'off'}: ${Math.round(rps)} req/s\n`);
    }
  }
  const mOff = median(off);
  const mOn = median(on);
  const delta = ((mOn - mOff) / mOff) * 100;
  process.stdout.write(
    `keep-alive throughput (${gen}, ${connections} connections, ${workers === 0 ? 'single mode' : `-w ${workers}`}, ${runs}×${seconds} s): median off ${Math.round(mOff)}, on ${Math.round(mOn)} req/s (${delta >= 0 ? '+' : ''}${delta.toFixed(1)}%)\n`,
  );
  // RSS of the serving process: no metrics, metrics not scraped yet, after a scrape.
  const plain = await server(false);
  await sleep(1500);
  const rssOff = rssKiB(plain.pid);
  await plain.stop();
  const withMetrics = await server(true);
  await sleep(1500);
  const rssIdle = rssKiB(withMetrics.pid);
  await get(withMetrics.mport, '/metrics');
  await sleep(500);
  const rssScraped = rssKiB(withMetrics.pid);
  await withMetrics.stop();
  process.stdout.write(
    `RSS (single process): no metrics ${rssOff} KiB; --metrics-url, never scraped ${rssIdle} KiB; after one scrape ${rssScraped} KiB\n`,
  );
}

main()
  .catch((err: unknown) => {
    process.stderr.write(`bench: ${String(err)}\n`);
    process.exitCode = 1;
  })
  .finally(cleanupAll);
