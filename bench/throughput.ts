// Suite `throughput`: requests/s and p99 of a trivial app and a ~1 ms CPU app, keep-alive and
// `Connection: close` loads, for a plain Node process, Node cluster (round-robin and SCHED_NONE),
// PM2 -i 2, nserve -w 2 and the no-master SO_REUSEPORT ceiling. Also how requests were shared between
// workers, and the master's CPU and RSS.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { type LoadgenName, type LoadgenResult, pickLoadgen, runLoad } from './lib/loadgen.js';
import { commandLine, formatForRepo, machine, writeResult, writeText } from './lib/machine.js';
import * as pm2 from './lib/pm2.js';
import {
  childPids,
  cpuMs,
  FIXTURES,
  freePort,
  NSERVE_CLI,
  now,
  type Proc,
  rssBytes,
  sleep,
  startNode,
  tmpDir,
  waitServing,
} from './lib/proc.js';
import { fmtK, fmtMB, fmtMs, fmtSpread, markdownTable, median, spread, table } from './lib/stats.js';
import { barChart } from './lib/svg.js';

export interface ThroughputOptions {
  rounds: number;
  quick: boolean;
  durationS: number;
  warmupS: number;
  connections: number;
  loadgen: string | undefined;
  apps: string[];
  loads: string[];
  cpuMs: number;
  systems: string[];
  out: string;
}

interface Ctx {
  app: string;
  port: number;
  env: Record<string, string>;
  tag: string;
}

interface Running {
  port: number;
  /** The process that only manages (null when there is none). */
  master(): number | null;
  /** The processes that serve. */
  workers(): number[];
  stop(): Promise<void>;
}

interface SystemDef {
  name: string;
  label: string;
  how: string;
  start(ctx: Ctx): Promise<Running>;
}

const appFile = (app: string): string => path.join(FIXTURES, 'apps', `${app}.mjs`);

async function started(procs: Proc[], port: number): Promise<void> {
  try {
    await Promise.race([
      waitServing(port, 30000),
      ...procs.map((p) =>
        p.exited.then((st) => {
          throw new Error(`exited early (${st.signal ?? st.code}): ${p.stderr.slice(-1000)}`);
        }),
      ),
    ]);
  } catch (err) {
    for (const p of procs) await p.stop('SIGKILL', 0);
    throw err;
  }
}

const plainSystem: SystemDef = {
  name: 'node-single',
  label: 'single Node process',
  how: 'node serve.mjs (http.createServer(app).listen(port))',
  async start(ctx) {
    const proc = startNode(path.join(FIXTURES, 'serve.mjs'), [], {
      ...ctx.env,
      PORT: String(ctx.port),
      BENCH_APP: appFile(ctx.app),
    });
    await started([proc], ctx.port);
    return {
      port: ctx.port,
      master: () => null,
      workers: () => [proc.pid],
      stop: () => proc.stop('SIGKILL', 0),
    };
  },
};

function clusterSystem(policy: 'rr' | 'none'): SystemDef {
  return {
    name: `cluster-${policy}`,
    label: policy === 'rr' ? 'Node cluster round-robin' : 'Node cluster SCHED_NONE',
    how: `cluster-primary.mjs, 2 workers, NODE_CLUSTER_SCHED_POLICY=${policy}`,
    async start(ctx) {
      const proc = startNode(path.join(FIXTURES, 'cluster-primary.mjs'), [], {
        ...ctx.env,
        PORT: String(ctx.port),
        WORKERS: '2',
        BENCH_APP: appFile(ctx.app),
        NODE_CLUSTER_SCHED_POLICY: policy,
      });
      await proc.waitForMsg('booted', 30000).catch(async (err: Error) => {
        await proc.stop('SIGKILL', 0);
        throw err;
      });
      await started([proc], ctx.port);
      return {
        port: ctx.port,
        master: () => proc.pid,
        workers: () => childPids(proc.pid),
        stop: () => proc.stop('SIGTERM', 2000),
      };
    },
  };
}

const pm2System: SystemDef = {
  name: 'pm2',
  label: 'PM2 -i 2',
  how: 'pm2 start (exec_mode cluster, instances 2) serve.mjs; master = the PM2 daemon',
  async start(ctx) {
    const name = await pm2.startApp({
      name: `tp-${ctx.app}-${ctx.tag}`,
      script: path.join(FIXTURES, 'serve.mjs'),
      instances: 2,
      waitReady: false,
      env: { ...ctx.env, PORT: String(ctx.port), BENCH_APP: appFile(ctx.app) },
    });
    try {
      await waitServing(ctx.port, 30000);
    } catch (err) {
      await pm2.deleteApp(name);
      throw err;
    }
    return {
      port: ctx.port,
      master: () => pm2.pm2DaemonPid() ?? null,
      workers: () => pm2.workerPids(),
      stop: () => pm2.deleteApp(name),
    };
  },
};

function nserveSystem(workers: number): SystemDef {
  return {
    name: workers ? `nserve-w${workers}` : 'nserve-single',
    label: workers ? `nserve -w ${workers}` : 'nserve single mode',
    how: `nserve start APP.mjs --directory bench/fixtures/apps${workers ? ` -w ${workers}` : ''}`,
    async start(ctx) {
      const proc = startNode(
        NSERVE_CLI,
        [
          'start',
          `${ctx.app}.mjs`,
          '--directory',
          path.join(FIXTURES, 'apps'),
          '--bind',
          `tcp://127.0.0.1:${ctx.port}`,
          ...(workers ? ['-w', String(workers)] : []),
        ],
        ctx.env,
      );
      await proc.waitForEvent('server.booted', 30000).catch(async (err: Error) => {
        await proc.stop('SIGKILL', 0);
        throw err;
      });
      await started([proc], ctx.port);
      return {
        port: ctx.port,
        master: () => (workers ? proc.pid : null),
        workers: () => (workers ? childPids(proc.pid) : [proc.pid]),
        stop: () => proc.stop('SIGTERM', 3000),
      };
    },
  };
}

const ceilingSystem: SystemDef = {
  name: 'reuseport-ceiling',
  label: 'no-master SO_REUSEPORT ceiling',
  how:
    '2 × node serve.mjs, each listen({ fd }) on its own SO_REUSEPORT socket (nserve addon) on one port, ' +
    'started by one idle parent (ceiling.mjs) so that both are in one session, like every other system',
  async start(ctx) {
    // One session, as nserve's master and workers are: under Linux's autogroup scheduling each session
    // gets an equal CPU share on a busy machine (bench/fixtures/ceiling.mjs).
    const proc = startNode(path.join(FIXTURES, 'ceiling.mjs'), [], {
      ...ctx.env,
      PORT: String(ctx.port),
      BENCH_APP: appFile(ctx.app),
      BENCH_REUSEPORT: '1',
      BENCH_PROCESSES: '2',
    });
    await proc.waitForMsg('listening', 30000).catch(async (err: Error) => {
      await proc.stop('SIGKILL', 0);
      throw err;
    });
    await started([proc], ctx.port);
    return {
      port: ctx.port,
      master: () => null,
      workers: () => childPids(proc.pid),
      stop: () => proc.stop('SIGKILL', 0),
    };
  },
};

export const THROUGHPUT_SYSTEMS: SystemDef[] = [
  plainSystem,
  clusterSystem('rr'),
  clusterSystem('none'),
  pm2System,
  nserveSystem(2),
  ceilingSystem,
  nserveSystem(0),
];
export const DEFAULT_THROUGHPUT_SYSTEMS = THROUGHPUT_SYSTEMS.filter((s) => s.name !== 'nserve-single').map(
  (s) => s.name,
);

// ── measurement ─────────────────────────────────────────────────────────────────────────────────────

/** One measurement: the load generator's figures (all but its own duration) and the servers'. */
interface Cell extends Omit<LoadgenResult, 'seconds'> {
  app: string;
  load: string;
  system: string;
  round: number;
  masterCpuPct: number | null;
  workersCpuPct: number;
  cpuUsPerRequest: number;
  masterRss: number | null;
  workersRss: number;
  shares: number[];
  servedCounted: number;
  error?: string;
}

function readStats(dir: string): Map<number, number> {
  const out = new Map<number, number>();
  for (const f of fs.readdirSync(dir)) {
    try {
      out.set(Number(f), Number(fs.readFileSync(path.join(dir, f), 'utf8')));
    } catch {
      // being written
    }
  }
  return out;
}

async function measure(
  gen: LoadgenName,
  sys: SystemDef,
  running: Running,
  statsDir: string,
  opts: ThroughputOptions,
  cell: { app: string; load: string; round: number },
): Promise<Cell> {
  const close = cell.load === 'close';
  const spec = { port: running.port, connections: opts.connections, close };
  try {
    if (opts.warmupS > 0) await runLoad(gen, { ...spec, seconds: opts.warmupS });
  } catch (err) {
    return failedCell(sys, cell, (err as Error).message);
  }
  await sleep(250); // counters flush every 100 ms
  const master = running.master();
  const workers = running.workers();
  const before = readStats(statsDir);
  const cpu0 = {
    master: master === null ? 0 : (cpuMs(master) ?? 0),
    workers: workers.reduce((a, p) => a + (cpuMs(p) ?? 0), 0),
  };
  const t0 = now();
  let r: LoadgenResult;
  try {
    r = await runLoad(gen, { ...spec, seconds: opts.durationS });
  } catch (err) {
    return failedCell(sys, cell, (err as Error).message);
  }
  const wall = now() - t0;
  const cpu1 = {
    master: master === null ? 0 : (cpuMs(master) ?? 0),
    workers: workers.reduce((a, p) => a + (cpuMs(p) ?? 0), 0),
  };
  const masterRss = master === null ? null : (rssBytes(master) ?? null);
  const workersRss = workers.reduce((a, p) => a + (rssBytes(p) ?? 0), 0);
  await sleep(250);
  const after = readStats(statsDir);
  const deltas = [...after].map(([pid, n]) => n - (before.get(pid) ?? 0)).filter((d) => d > 0);
  const counted = deltas.reduce((a, b) => a + b, 0);
  return {
    ...cell,
    system: sys.name,
    rps: r.rps,
    requests: r.requests,
    p50Ms: r.p50Ms,
    p99Ms: r.p99Ms,
    maxMs: r.maxMs,
    errors: r.errors,
    errorDetail: r.errorDetail,
    non2xx: r.non2xx,
    masterCpuPct: master === null ? null : ((cpu1.master - cpu0.master) / wall) * 100,
    workersCpuPct: ((cpu1.workers - cpu0.workers) / wall) * 100,
    cpuUsPerRequest:
      ((cpu1.master - cpu0.master + cpu1.workers - cpu0.workers) * 1000) / Math.max(1, r.requests),
    masterRss,
    workersRss,
    shares: deltas.sort((a, b) => b - a).map((d) => Math.round((d / Math.max(1, counted)) * 100)),
    servedCounted: counted,
  };
}

function failedCell(sys: SystemDef, cell: { app: string; load: string; round: number }, error: string): Cell {
  return {
    ...cell,
    system: sys.name,
    rps: Number.NaN,
    requests: 0,
    p50Ms: Number.NaN,
    p99Ms: Number.NaN,
    maxMs: Number.NaN,
    errors: 0,
    errorDetail: '',
    non2xx: 0,
    masterCpuPct: null,
    workersCpuPct: Number.NaN,
    cpuUsPerRequest: Number.NaN,
    masterRss: null,
    workersRss: Number.NaN,
    shares: [],
    servedCounted: 0,
    error,
  };
}

/** Iterations of the cpu app's loop that take `ms` on this machine (the least disturbed of 7 tries). */
async function calibrateCpu(ms: number): Promise<{ iterations: number; itersPerMs: number }> {
  const mod = (await import(pathToFileURL(appFile('cpu')).href)) as { work(n: number): number };
  for (let i = 0; i < 20; i++) mod.work(100000);
  const n = 2_000_000;
  let best = Number.POSITIVE_INFINITY;
  for (let i = 0; i < 7; i++) {
    const t = performance.now();
    mod.work(n);
    best = Math.min(best, performance.now() - t);
  }
  const itersPerMs = n / best;
  return { iterations: Math.round(itersPerMs * ms), itersPerMs: Math.round(itersPerMs) };
}

// ── the suite ──────────────────────────────────────────────────────────────────────────────────────────

const LOAD_LABEL: Record<string, string> = { keepalive: 'keep-alive', close: 'Connection: close' };

export async function throughputSuite(opts: ThroughputOptions): Promise<void> {
  const m = machine();
  const gen = pickLoadgen(opts.loadgen);
  const systems = opts.systems.map((name) => {
    const s = THROUGHPUT_SYSTEMS.find((x) => x.name === name);
    if (!s)
      throw new Error(`unknown system ${name}; known: ${THROUGHPUT_SYSTEMS.map((x) => x.name).join(', ')}`);
    return s;
  });
  for (const a of opts.apps)
    if (!['hello', 'cpu'].includes(a)) throw new Error(`unknown app ${a}: hello, cpu`);
  for (const l of opts.loads)
    if (!['keepalive', 'close'].includes(l)) throw new Error(`unknown load ${l}: keepalive, close`);
  const cpu = await calibrateCpu(opts.cpuMs);
  const started = Date.now();
  console.log(
    `throughput suite: ${systems.length} systems × ${opts.apps.length} apps × ${opts.loads.length} loads × ${opts.rounds} rounds, ` +
      `${gen} -c${opts.connections} ${opts.durationS} s (+${opts.warmupS} s warm-up); cpu app: ${cpu.iterations} iterations ≈ ${opts.cpuMs} ms`,
  );
  const cells: Cell[] = [];
  for (let round = 1; round <= opts.rounds; round++) {
    for (const app of opts.apps) {
      // Every system of this app runs at once (idle but for the one under load), so the rounds interleave
      // system by system: A B C … A B C …
      const running = new Map<string, { r: Running; statsDir: string }>();
      for (const sys of systems) {
        const statsDir = tmpDir('nserve-bench-stats-');
        try {
          const port = await freePort();
          const r = await sys.start({
            app,
            port,
            tag: `r${round}`,
            env: { BENCH_STATS_DIR: statsDir, BENCH_CPU_ITERS: String(cpu.iterations) },
          });
          running.set(sys.name, { r, statsDir });
        } catch (err) {
          console.log(`  ${sys.name}: failed to start: ${(err as Error).message.split('\n')[0]}`);
        }
      }
      for (const [li, load] of opts.loads.entries()) {
        const order = systems.map((_, i) => systems[(i + round - 1 + li) % systems.length]!);
        for (const sys of order) {
          const cellId = { app, load, round };
          const entry = running.get(sys.name);
          const cell = entry
            ? await measure(gen, sys, entry.r, entry.statsDir, opts, cellId)
            : failedCell(sys, cellId, 'did not start');
          cells.push(cell);
          console.log(
            `  round ${round} ${app} ${LOAD_LABEL[load]!.padEnd(17)} ${sys.name.padEnd(18)} ${fmtK(cell.rps).padStart(6)} req/s  p99 ${fmtMs(cell.p99Ms).padStart(8)}` +
              `${cell.masterCpuPct === null ? '' : `  master ${cell.masterCpuPct.toFixed(0)}% CPU`}  shares ${cell.shares.join('/')}` +
              `${cell.errors + cell.non2xx ? `  errors ${cell.errorDetail} non2xx ${cell.non2xx}` : ''}${cell.error ? `  ERROR ${cell.error.split('\n')[0]}` : ''}`,
          );
        }
      }
      for (const { r, statsDir } of running.values()) {
        await r.stop().catch(() => undefined);
        fs.rmSync(statsDir, { recursive: true, force: true });
      }
    }
  }
  await pm2.killPm2();
  m.loadavgAtEnd = os.loadavg().map((x) => Number(x.toFixed(2)));
  report(opts, gen, cpu, cells, systems, m, started);
}

function report(
  opts: ThroughputOptions,
  gen: LoadgenName,
  cpu: { iterations: number; itersPerMs: number },
  cells: Cell[],
  systems: SystemDef[],
  m: ReturnType<typeof machine>,
  startedAt: number,
): void {
  const header = [
    'system',
    'req/s',
    'vs ceiling',
    'p99',
    'errors',
    'master CPU',
    'workers CPU',
    'CPU µs/req',
    'master RSS',
    'shares %',
  ];
  const groups: { app: string; load: string; rows: string[][]; summary: Record<string, unknown>[] }[] = [];
  const charts: Parameters<typeof barChart>[0] = [];
  for (const app of opts.apps) {
    for (const load of opts.loads) {
      const of = (s: string): Cell[] =>
        cells.filter((c) => c.app === app && c.load === load && c.system === s);
      const ceiling = median(of('reuseport-ceiling').map((c) => c.rps));
      const rows: string[][] = [];
      const summary: Record<string, unknown>[] = [];
      const bars: Parameters<typeof barChart>[0][number]['bars'] = [];
      for (const sys of systems) {
        const cs = of(sys.name);
        const rps = spread(cs.map((c) => c.rps));
        const ratio = rps.median / ceiling;
        const p99 = spread(cs.map((c) => c.p99Ms));
        const masterCpu = cs.some((c) => c.masterCpuPct !== null)
          ? spread(cs.map((c) => c.masterCpuPct ?? Number.NaN))
          : null;
        const workersCpu = spread(cs.map((c) => c.workersCpuPct));
        const usPerReq = spread(cs.map((c) => c.cpuUsPerRequest));
        const masterRss = cs.some((c) => c.masterRss !== null)
          ? median(cs.map((c) => c.masterRss ?? Number.NaN))
          : null;
        const errors = cs.reduce((a, c) => a + c.errors + c.non2xx, 0);
        const failedRuns = cs.filter((c) => c.error).length;
        rows.push([
          sys.label + (failedRuns ? ` (${failedRuns} failed)` : ''),
          fmtSpread(rps, fmtK),
          Number.isFinite(ratio) ? ratio.toFixed(2) : '—',
          fmtSpread(p99, fmtMs),
          String(errors),
          masterCpu ? `${masterCpu.median.toFixed(0)}%` : '—',
          `${workersCpu.median.toFixed(0)}%`,
          Number.isFinite(usPerReq.median) ? usPerReq.median.toFixed(0) : '—',
          masterRss === null ? '—' : fmtMB(masterRss),
          cs.map((c) => c.shares.join('/')).join(' · '),
        ]);
        summary.push({
          system: sys.name,
          label: sys.label,
          rps,
          ratioToCeiling: ratio,
          p99Ms: p99,
          errors,
          masterCpuPct: masterCpu,
          workersCpuPct: workersCpu,
          cpuUsPerRequest: usPerReq,
          masterRssBytes: masterRss,
          shares: cs.map((c) => c.shares),
          errorsByRun: cs.map((c) => c.error ?? c.errorDetail),
        });
        bars.push({
          label: sys.label,
          value: rps.median,
          min: rps.min,
          max: rps.max,
          note: Number.isFinite(ratio) && sys.name !== 'reuseport-ceiling' ? `(${ratio.toFixed(2)})` : '',
        });
      }
      groups.push({ app, load, rows, summary });
      charts.push({ label: `${app} app, ${LOAD_LABEL[load]}`, bars });
    }
  }
  console.log(
    `\nThroughput: ${gen} -t1 -c${opts.connections} -d${opts.durationS}s, ${opts.rounds} rounds, median (min–max); vs ceiling = req/s ÷ no-master SO_REUSEPORT ceiling; CPU in % of one core during the run`,
  );
  let markdown = '';
  for (const g of groups) {
    const title = `${g.app} app, ${LOAD_LABEL[g.load]}`;
    console.log(`\n${title}\n${table(header, g.rows)}`);
    markdown += `\n**${title}**\n\n${markdownTable(header, g.rows)}\n`;
  }
  const out = opts.out;
  const svgFile = `${out.replace(/\.json$/, '')}.svg`;
  writeResult(out, {
    suite: 'throughput',
    command: commandLine(),
    machine: m,
    options: opts,
    loadgen: gen,
    cpuApp: { ...cpu, targetMs: opts.cpuMs },
    elapsedS: Math.round((Date.now() - startedAt) / 1000),
    systems: systems.map((s) => ({ name: s.name, label: s.label, how: s.how })),
    summary: groups.map((g) => ({ app: g.app, load: g.load, systems: g.summary })),
    markdown,
    cells,
  });
  writeText(
    svgFile,
    barChart(charts, `Throughput, 2 cores shared with the load generator (${gen} -c${opts.connections})`, ''),
  );
  formatForRepo([out]);
  console.log(
    `\nresults: ${path.relative(process.cwd(), out)}\nchart:   ${path.relative(process.cwd(), svgFile)}`,
  );
}
