// Suite `metrics` (issue 19): what metrics cost the app. Keep-alive throughput of the same server side by
// side, as medians of interleaved runs, in these modes (`--modes`, default off,on,1s,15s):
//   off     no metrics configured
//   on      --metrics-url, never scraped (request counting only; prom-client not loaded)
//   <N>s    --metrics-url, scraped once before the warm-up (so prom-client and its collectors run, as on
//           a server Prometheus scrapes) and then every N seconds during the measurement
//   base:<mode>  the same with the nserve checkout given by --base DIR (built: dist/ and the addon), to
//           compare two versions in the same interleaved rounds
// For each run: requests/s (wrk), and the CPU time the server's processes (master and workers) used per
// request, read from /proc: throughput on 2 shared cores swings with whatever else runs, CPU per request
// much less. Then the RSS a single-mode server pays: no metrics, metrics never scraped, after a scrape.
//
//   npm run bench -- metrics [--rounds 5] [--duration 5] [--workers 2] [--modes off,on,1s,15s]
//                            [--base DIR --modes off,1s,base:off,base:1s]
//
// Target (issue 19): throughput with metrics within 3% of without; no RSS cost while nothing scrapes.
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { pickLoadgen, runLoad } from './lib/loadgen.js';
import { commandLine, formatForRepo, machine, writeResult } from './lib/machine.js';
import { childPids, cpuMs, freePort, NSERVE_CLI, now, ROOT, rssBytes, sleep, startNode } from './lib/proc.js';
import { fmtMB, fmtNum, markdownTable, median, spread, table } from './lib/stats.js';

export interface MetricsOptions {
  rounds: number;
  durationS: number;
  warmupS: number;
  connections: number;
  loadgen: string | undefined;
  workers: number;
  modes: string[];
  /** Another nserve checkout, for `base:` modes. */
  base: string | undefined;
  out: string;
}

interface Mode {
  name: string;
  /** bin/nserve.js of the checkout that runs. */
  cli: string;
  metrics: boolean;
  /** Scrape period in ms; undefined: never scraped. */
  scrapeMs: number | undefined;
}

interface Run {
  mode: string;
  round: number;
  rps: number;
  requests: number;
  cpuMs: number;
  cpuUsPerRequest: number;
  /** Of which the master's (cluster mode; 0 in single mode). */
  masterUsPerRequest: number;
  p99Ms: number;
  scrapes: number;
  scrapeMs: number[];
}

function parseMode(name: string, base: string | undefined): Mode {
  let cli = NSERVE_CLI;
  let what = name;
  if (name.startsWith('base:')) {
    if (base === undefined) throw new Error(`--modes ${name}: needs --base DIR`);
    cli = path.join(path.resolve(base), 'bin', 'nserve.js');
    what = name.slice('base:'.length);
  }
  if (what === 'off') return { name, cli, metrics: false, scrapeMs: undefined };
  if (what === 'on') return { name, cli, metrics: true, scrapeMs: undefined };
  const m = /^(\d+(?:\.\d+)?)s$/.exec(what);
  if (m === null)
    throw new Error(
      `--modes: off, on or a scrape period like 1s (base: before any), not ${JSON.stringify(name)}`,
    );
  return { name, cli, metrics: true, scrapeMs: Number(m[1]) * 1000 };
}

interface Server {
  port: number;
  mport: number;
  pid: number;
  /** The server's processes: the master (or single process) and its workers. */
  cpu(): number;
  /** The master's alone (cluster mode), or 0. */
  masterCpu(): number;
  stop(): Promise<void>;
}

async function startServer(workers: number, metrics: boolean, cli = NSERVE_CLI): Promise<Server> {
  const port = await freePort();
  const mport = await freePort();
  const srv = startNode(cli, [
    'start',
    path.join(ROOT, 'examples/hello.mjs'),
    '--bind',
    `tcp://127.0.0.1:${port}`,
    ...(workers > 0 ? ['-w', String(workers)] : []),
    ...(metrics ? ['--metrics-url', `tcp://127.0.0.1:${mport}`] : []),
    '--log-level',
    'warn',
  ]);
  // The boot line is at info: wait until every worker answers (a few requests on new connections).
  const deadline = Date.now() + 20000;
  let pids = new Set<string>();
  while (Date.now() < deadline && pids.size < Math.max(1, workers)) {
    const body = await get(port, '/').catch(() => undefined);
    if (body !== undefined) pids.add(String((JSON.parse(body) as { pid: number }).pid));
    else pids = new Set();
    await sleep(body === undefined ? 50 : 5);
  }
  const tree = (): number[] => [srv.pid, ...childPids(srv.pid)];
  return {
    port,
    mport,
    pid: srv.pid,
    cpu: () => tree().reduce((a, pid) => a + (cpuMs(pid) ?? 0), 0),
    masterCpu: () => (workers > 0 ? (cpuMs(srv.pid) ?? 0) : 0),
    stop: () => srv.stop(),
  };
}

function get(port: number, p: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: p, agent: false }, (res) => {
      let t = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        t += c;
      });
      res.on('end', () => (res.statusCode === 200 ? resolve(t) : reject(new Error(`${res.statusCode}`))));
    });
    req.on('error', reject);
    req.setTimeout(5000, () => req.destroy(new Error('timeout')));
  });
}

/** Scrape every `periodMs` until stopped; returns each scrape's duration. */
function scrapeLoop(port: number, periodMs: number): { stop: () => Promise<number[]> } {
  let on = true;
  let wake: (() => void) | undefined;
  const took: number[] = [];
  const loop = (async () => {
    // The first scrape was before the warm-up: the next one is a period later.
    let next = now() + periodMs;
    for (;;) {
      await new Promise<void>((r) => {
        wake = r;
        setTimeout(r, Math.max(0, next - now()));
      });
      if (!on) return;
      const t0 = now();
      next = t0 + periodMs;
      await get(port, '/metrics').then(
        () => took.push(now() - t0),
        () => {},
      );
    }
  })();
  return {
    stop: async () => {
      on = false;
      wake?.();
      await loop;
      return took;
    },
  };
}

async function measure(o: MetricsOptions, mode: Mode, round: number): Promise<Run> {
  const gen = pickLoadgen(o.loadgen);
  const s = await startServer(o.workers, mode.metrics, mode.cli);
  try {
    // A scraped server: the first scrape (prom-client loaded, collectors started) comes before the warm-up.
    if (mode.scrapeMs !== undefined) await get(s.mport, '/metrics');
    await runLoad(gen, { port: s.port, connections: o.connections, seconds: o.warmupS, close: false });
    const scraper = mode.scrapeMs === undefined ? undefined : scrapeLoop(s.mport, mode.scrapeMs);
    const cpu0 = s.cpu();
    const master0 = s.masterCpu();
    const r = await runLoad(gen, {
      port: s.port,
      connections: o.connections,
      seconds: o.durationS,
      close: false,
    });
    const cpu = s.cpu() - cpu0;
    const master = s.masterCpu() - master0;
    const took = (await scraper?.stop()) ?? [];
    if (r.errors > 0 || r.non2xx > 0) throw new Error(`errors under load (${mode.name}): ${r.errorDetail}`);
    return {
      mode: mode.name,
      round,
      rps: r.rps,
      requests: r.requests,
      cpuMs: cpu,
      cpuUsPerRequest: (cpu * 1000) / r.requests,
      masterUsPerRequest: (master * 1000) / r.requests,
      p99Ms: r.p99Ms,
      scrapes: took.length,
      scrapeMs: took.map((t) => Math.round(t * 10) / 10),
    };
  } finally {
    await s.stop();
  }
}

async function footprint(): Promise<{ off: number; unscraped: number; scraped: number }> {
  const rss = async (metrics: boolean, scrape: boolean): Promise<number> => {
    const s = await startServer(0, metrics);
    try {
      await sleep(1500);
      if (scrape) {
        await get(s.mport, '/metrics');
        await sleep(500);
      }
      return rssBytes(s.pid) ?? Number.NaN;
    } finally {
      await s.stop();
    }
  };
  return { off: await rss(false, false), unscraped: await rss(true, false), scraped: await rss(true, true) };
}

/**
 * CPU the server's processes spend per scrape, without load (the figure the shared cores disturb least):
 * `n` scrapes in a row after a few to warm up, CPU of the whole tree before and after, divided by `n`.
 */
async function scrapeCpu(cli: string, workers: number, n: number): Promise<number> {
  const s = await startServer(workers, true, cli);
  try {
    for (let i = 0; i < 5; i++) await get(s.mport, '/metrics');
    const cpu0 = s.cpu();
    for (let i = 0; i < n; i++) await get(s.mport, '/metrics');
    return (s.cpu() - cpu0) / n;
  } finally {
    await s.stop();
  }
}

const pct = (x: number, ref: number): string => {
  const d = ((x - ref) / ref) * 100;
  return `${d >= 0 ? '+' : '−'}${Math.abs(d).toFixed(1)}%`;
};

export async function metricsSuite(o: MetricsOptions): Promise<void> {
  const modes = o.modes.map((m) => parseMode(m, o.base));
  const info = machine();
  const runs: Run[] = [];
  const setup = `${o.workers === 0 ? 'single mode' : `-w ${o.workers}`}, ${pickLoadgen(o.loadgen)} ${o.connections} keep-alive connections, ${o.rounds}×${o.durationS} s`;
  process.stdout.write(
    `metrics: ${setup}; load average ${os
      .loadavg()
      .map((x) => x.toFixed(2))
      .join(' ')}\n`,
  );
  for (let round = 0; round < o.rounds; round++) {
    // Interleaved, each round starting one mode later, so drift on the machine hits every mode alike.
    for (let k = 0; k < modes.length; k++) {
      const mode = modes[(round + k) % modes.length]!;
      const run = await measure(o, mode, round + 1);
      runs.push(run);
      process.stdout.write(
        `  round ${round + 1} ${mode.name.padEnd(8)} ${fmtNum(run.rps)} req/s, ${run.cpuUsPerRequest.toFixed(1)} µs CPU/request` +
          (o.workers > 0 ? ` (master ${run.masterUsPerRequest.toFixed(2)})` : '') +
          (run.scrapes > 0 ? `, ${run.scrapes} scrapes (median ${median(run.scrapeMs).toFixed(1)} ms)` : '') +
          '\n',
      );
    }
  }
  const ref = modes[0]!.name;
  const of = (name: string, f: (r: Run) => number) => spread(runs.filter((r) => r.mode === name).map(f));
  const refRps = of(ref, (r) => r.rps).median;
  const refCpu = of(ref, (r) => r.cpuUsPerRequest).median;
  const header = ['mode', 'req/s median [min–max]', `vs ${ref}`, 'CPU µs/request', `vs ${ref}`, 'scrape ms'];
  const rows = modes.map((m) => {
    const rps = of(m.name, (r) => r.rps);
    const cpu = of(m.name, (r) => r.cpuUsPerRequest);
    const scrape = median(runs.filter((r) => r.mode === m.name).flatMap((r) => r.scrapeMs));
    return [
      m.name,
      `${fmtNum(rps.median)} [${fmtNum(rps.min)}–${fmtNum(rps.max)}]`,
      m.name === ref ? '' : pct(rps.median, refRps),
      `${cpu.median.toFixed(1)} [${cpu.min.toFixed(1)}–${cpu.max.toFixed(1)}]`,
      m.name === ref ? '' : pct(cpu.median, refCpu),
      Number.isFinite(scrape) ? scrape.toFixed(1) : '',
    ];
  });
  const fp = await footprint();
  // CPU per scrape, this checkout and the base, interleaved.
  const perScrape: Record<string, number[]> = { this: [] };
  if (o.base !== undefined) perScrape.base = [];
  for (let i = 0; i < 3; i++)
    for (const which of Object.keys(perScrape)) {
      const cli = which === 'base' ? path.join(o.base ?? ROOT, 'bin', 'nserve.js') : NSERVE_CLI;
      perScrape[which]?.push(await scrapeCpu(cli, o.workers, 100));
    }
  const scrapeCpuMs = Object.fromEntries(Object.entries(perScrape).map(([k, v]) => [k, median(v)]));
  info.loadavgAtEnd = os.loadavg().map((x) => Number(x.toFixed(2)));
  process.stdout.write(`\n${table(header, rows)}\n`);
  process.stdout.write(
    `RSS (single mode): no metrics ${fmtMB(fp.off)}; --metrics-url never scraped ${fmtMB(fp.unscraped)}; after a scrape ${fmtMB(fp.scraped)}\n`,
  );
  process.stdout.write(
    `CPU per scrape (server processes, no load, median of 3×100): ${Object.entries(scrapeCpuMs)
      .map(([k, v]) => `${k} ${v.toFixed(2)} ms`)
      .join(', ')}\n`,
  );
  process.stdout.write(
    `load average at start ${info.loadavgAtStart.join(' ')}, at end ${info.loadavgAtEnd.join(' ')}\n`,
  );
  writeResult(o.out, {
    suite: 'metrics',
    command: commandLine(),
    machine: info,
    options: { ...o, out: undefined },
    summary: { markdown: markdownTable(header, rows), rssBytes: fp, scrapeCpuMs },
    runs,
  });
  formatForRepo([o.out]);
  process.stdout.write(`result: ${o.out}\n`);
}
