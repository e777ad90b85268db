// Suite `dashboard`: what an open dashboard costs the workers. The same `-w N` server under keep-alive load,
// in interleaved rounds, with the dashboard closed and open (a client that polls GET /dashboard/view once
// a second with a session cookie, as the page does). For each run: requests/s, and the CPU time of the
// workers (from /proc, the master excluded) and of the master per request. The view is built in the master
// from what it already holds, so the workers should not see it: the difference in requests/s should be
// within 2σ of the runs' spread, and the workers' CPU per request within noise.
//
//   npm run bench -- dashboard [--rounds 5] [--duration 5] [--workers 2] [--connections 32]
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { pickLoadgen, runLoad } from './lib/loadgen.js';
import { commandLine, formatForRepo, machine, writeResult } from './lib/machine.js';
import { childPids, cpuMs, freePort, NSERVE_CLI, ROOT, sleep, startNode } from './lib/proc.js';
import { fmtNum, markdownTable, table } from './lib/stats.js';

export interface DashboardBenchOptions {
  rounds: number;
  durationS: number;
  warmupS: number;
  connections: number;
  loadgen: string | undefined;
  workers: number;
  out: string;
}

const MODES = ['closed', 'open'] as const;
type Mode = (typeof MODES)[number];
const TOKEN = 'bench-dashboard-token-0123456789';

interface Run {
  mode: Mode;
  round: number;
  rps: number;
  requests: number;
  workersUsPerRequest: number;
  masterUsPerRequest: number;
  polls: number;
}

function get(
  port: number,
  p: string,
  headers: http.OutgoingHttpHeaders = {},
): Promise<{ status: number; body: string; headers: http.IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: p, agent: false, headers }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        body += c;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }));
    });
    req.on('error', reject);
    req.setTimeout(5000, () => req.destroy(new Error('timeout')));
  });
}

/** The page's polling, with the cookie a login URL sets (the login token made as `ctl dashboard` does). */
async function openDashboard(cport: number): Promise<{ stop(): Promise<number> }> {
  const { makeLoginToken } = await import('../src/dashboard/token.js');
  const login = await get(cport, `/dashboard/login?t=${makeLoginToken(TOKEN, Date.now())}`);
  const cookie = String(login.headers['set-cookie']?.[0] ?? '').split(';')[0]!;
  if (login.status !== 303 || cookie === '') throw new Error(`dashboard login failed: ${login.status}`);
  await get(cport, '/dashboard/', { cookie });
  let polls = 0;
  let on = true;
  const loop = (async () => {
    while (on) {
      const r = await get(cport, '/dashboard/view', { cookie, 'sec-fetch-site': 'same-origin' });
      if (r.status !== 200) throw new Error(`GET /dashboard/view: ${r.status}`);
      polls++;
      await sleep(1000);
    }
  })();
  return {
    stop: async () => {
      on = false;
      await loop;
      return polls;
    },
  };
}

async function measure(o: DashboardBenchOptions, mode: Mode, round: number): Promise<Run> {
  const gen = pickLoadgen(o.loadgen);
  const port = await freePort();
  const cport = await freePort();
  const srv = startNode(NSERVE_CLI, [
    'start',
    path.join(ROOT, 'examples/hello.mjs'),
    '--bind',
    `tcp://127.0.0.1:${port}`,
    '-w',
    String(o.workers),
    '--control-url',
    `tcp://127.0.0.1:${cport}`,
    '--control-token',
    TOKEN,
    '--log-level',
    'warn',
  ]);
  try {
    const deadline = Date.now() + 20_000;
    while (
      (
        await get(cport, '/stats', { authorization: `Bearer ${TOKEN}` }).catch(() => undefined)
      )?.body.includes('"booted": true') !== true
    ) {
      if (Date.now() > deadline) throw new Error('the server did not boot within 20 s');
      await sleep(100);
    }
    const client = mode === 'open' ? await openDashboard(cport) : undefined;
    await runLoad(gen, { port, connections: o.connections, seconds: o.warmupS, close: false });
    const workers = childPids(srv.pid);
    const wcpu = (): number => workers.reduce((a, pid) => a + (cpuMs(pid) ?? 0), 0);
    const w0 = wcpu();
    const m0 = cpuMs(srv.pid) ?? 0;
    const r = await runLoad(gen, { port, connections: o.connections, seconds: o.durationS, close: false });
    const w = wcpu() - w0;
    const m = (cpuMs(srv.pid) ?? 0) - m0;
    const polls = (await client?.stop()) ?? 0;
    if (r.errors > 0 || r.non2xx > 0) throw new Error(`errors under load (${mode}): ${r.errorDetail}`);
    return {
      mode,
      round,
      rps: r.rps,
      requests: r.requests,
      workersUsPerRequest: (w * 1000) / r.requests,
      masterUsPerRequest: (m * 1000) / r.requests,
      polls,
    };
  } finally {
    await srv.stop();
  }
}

function meanSd(v: readonly number[]): { mean: number; sd: number } {
  const mean = v.reduce((a, b) => a + b, 0) / v.length;
  const sd =
    v.length > 1 ? Math.sqrt(v.reduce((a, b) => a + (b - mean) ** 2, 0) / (v.length - 1)) : Number.NaN;
  return { mean, sd };
}

export async function dashboardSuite(o: DashboardBenchOptions): Promise<void> {
  const info = machine();
  const runs: Run[] = [];
  process.stdout.write(
    `dashboard: -w ${o.workers}, ${pickLoadgen(o.loadgen)} ${o.connections} keep-alive connections, ${o.rounds}×${o.durationS} s; load average ${os
      .loadavg()
      .map((x) => x.toFixed(2))
      .join(' ')}\n`,
  );
  for (let round = 0; round < o.rounds; round++) {
    for (let k = 0; k < MODES.length; k++) {
      const mode = MODES[(round + k) % MODES.length]!;
      const run = await measure(o, mode, round + 1);
      runs.push(run);
      process.stdout.write(
        `  round ${round + 1} ${mode.padEnd(6)} ${fmtNum(run.rps)} req/s, workers ${run.workersUsPerRequest.toFixed(1)} µs CPU/request, master ${run.masterUsPerRequest.toFixed(2)}${run.polls > 0 ? `, ${run.polls} polls` : ''}\n`,
      );
    }
  }
  const of = (mode: Mode, f: (r: Run) => number) => meanSd(runs.filter((r) => r.mode === mode).map(f));
  const header = ['dashboard', 'req/s mean ± σ', 'workers CPU µs/request', 'master CPU µs/request'];
  const rows = MODES.map((m) => {
    const rps = of(m, (r) => r.rps);
    const wk = of(m, (r) => r.workersUsPerRequest);
    const ms = of(m, (r) => r.masterUsPerRequest);
    return [
      m,
      `${fmtNum(rps.mean)} ± ${fmtNum(rps.sd)}`,
      `${wk.mean.toFixed(1)} ± ${wk.sd.toFixed(1)}`,
      `${ms.mean.toFixed(2)} ± ${ms.sd.toFixed(2)}`,
    ];
  });
  const closed = of('closed', (r) => r.rps);
  const open = of('open', (r) => r.rps);
  // σ of the difference of two means of n runs each.
  const n = Math.max(1, o.rounds);
  const sdDiff = Math.sqrt((closed.sd ** 2 + open.sd ** 2) / n);
  const diff = open.mean - closed.mean;
  const verdict = `open − closed: ${fmtNum(diff)} req/s (${((diff / closed.mean) * 100).toFixed(1)}%); 2σ of the difference ${fmtNum(2 * sdDiff)}: ${Math.abs(diff) <= 2 * sdDiff ? 'within' : 'NOT within'} 2σ`;
  info.loadavgAtEnd = os.loadavg().map((x) => Number(x.toFixed(2)));
  process.stdout.write(`\n${table(header, rows)}\n${verdict}\n`);
  writeResult(o.out, {
    suite: 'dashboard',
    command: commandLine(),
    machine: info,
    options: { ...o, out: undefined },
    summary: { markdown: markdownTable(header, rows), verdict },
    runs,
  });
  formatForRepo([o.out]);
  process.stdout.write(`result: ${o.out}\n`);
}
