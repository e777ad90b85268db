// Suite `footprint` (issue 17, goals 4 and 6): what nserve costs in memory and start-up against the same
// app under plain Node, interleaved, as ratios.
//
// Start-up and RSS: the `hello` app (bench/fixtures/apps/hello.mjs), no boot delay, under
//   - plain `node serve.mjs` (http.createServer(app).listen(port)),
//   - `nserve start hello.mjs` (single mode),
//   - Node `cluster` with 2 workers (bench/fixtures/cluster-primary.mjs, the primary forks serve.mjs),
//   - `nserve start hello.mjs -w 2`.
// For each: spawn → first 200 (polled every 5 ms on new connections); then 500 sequential requests and
// 1 s idle; then VmRSS and RssAnon of the master and of each serving process. RSS counts the pages of the
// `node` binary a process touched, shared by every process (and charged once to a memory cgroup);
// RssAnon, its own heap and allocations, is what each more worker really costs.
//
// `--before DIR`: also `nserve start` (single and -w 2) from another nserve build (DIR/bin/nserve.js, e.g.
// a copy of main's bin/, dist/, build/ and package.json), interleaved in the same rounds: before/after
// figures from one run, on the same load.
//
// Peak memory of a cluster hot restart (`--peak`): `nserve -w 8` with the restart suite's versioned app
// (boot --boot-ms), idle; the RSS of the whole tree (master + every descendant) sampled every 20 ms,
// steady level (median over 1 s) against the peak from the signal to 2 s after the restart is done.
import * as os from 'node:os';
import * as path from 'node:path';
import { switchRelease, writeRelease } from '../test/helpers/releases.js';
import { restart } from '../test/helpers/restart.js';
import { commandLine, formatForRepo, machine, writeResult } from './lib/machine.js';
import {
  anonBytes,
  childPids,
  FIXTURES,
  freePort,
  getJson,
  NSERVE_CLI,
  now,
  type Proc,
  rssBytes,
  sleep,
  startNode,
  tmpDir,
  until,
} from './lib/proc.js';
import { fmtMB, fmtMs, fmtSpread, markdownTable, median, spread, table } from './lib/stats.js';

export interface FootprintOptions {
  rounds: number;
  peak: boolean;
  peakWorkers: number;
  bootMs: number;
  out: string;
  /** Root of another nserve build to compare with (its bin/nserve.js), or undefined. */
  before?: string | undefined;
}

interface Started {
  proc: Proc;
  /** The managing process, if any. */
  master: number | null;
  servers: () => number[];
}

interface SystemDef {
  name: string;
  label: string;
  start(port: number): Started;
}

const signedMB = (bytes: number): string => (bytes >= 0 ? `+${fmtMB(bytes)}` : `−${fmtMB(-bytes)}`);

const HELLO = path.join(FIXTURES, 'apps', 'hello.mjs');

const PLAIN_NODE: SystemDef = {
  name: 'node',
  label: 'plain node',
  start(port) {
    const proc = startNode(path.join(FIXTURES, 'serve.mjs'), [], { PORT: String(port), BENCH_APP: HELLO });
    return { proc, master: null, servers: () => [proc.pid] };
  },
};

const NODE_CLUSTER: SystemDef = {
  name: 'cluster',
  label: 'Node cluster, 2 workers',
  start(port) {
    const proc = startNode(path.join(FIXTURES, 'cluster-primary.mjs'), [], {
      PORT: String(port),
      WORKERS: '2',
      BENCH_APP: HELLO,
    });
    return { proc, master: proc.pid, servers: () => childPids(proc.pid) };
  },
};

/**
 * `nserve start hello.mjs` (single, or `-w 2`) run by `cli`; `control`: with a control server (unix
 * socket in a temporary directory), which turns the metrics on too (prom-client in every process).
 */
function nserveSystem(name: string, label: string, cli: string, workers: number, control = false): SystemDef {
  return {
    name,
    label,
    start(port) {
      const args = [
        'start',
        'hello.mjs',
        '--directory',
        path.dirname(HELLO),
        '--bind',
        `tcp://127.0.0.1:${port}`,
      ];
      if (control) args.push('--control-url', `unix://${tmpDir('nserve-bench-fp-')}/control.sock`);
      const proc = startNode(cli, workers > 0 ? [...args, '-w', String(workers)] : args);
      return workers > 0
        ? { proc, master: proc.pid, servers: () => childPids(proc.pid) }
        : { proc, master: null, servers: () => [proc.pid] };
    },
  };
}

/** The systems of a run: with `before`, each nserve system also from that build, right after this one's. */
export function footprintSystems(before?: string): SystemDef[] {
  const beforeCli = before === undefined ? undefined : path.join(path.resolve(before), 'bin', 'nserve.js');
  const nserve = (name: string, label: string, workers: number): SystemDef[] => [
    nserveSystem(name, label, NSERVE_CLI, workers),
    ...(beforeCli === undefined
      ? []
      : [nserveSystem(`${name}-before`, `${label} (before)`, beforeCli, workers)]),
  ];
  return [
    PLAIN_NODE,
    ...nserve('nserve-single', 'nserve single mode', 0),
    NODE_CLUSTER,
    ...nserve('nserve-w2', 'nserve -w 2', 2),
    nserveSystem('nserve-w2-ctl', 'nserve -w 2, control + metrics', NSERVE_CLI, 2, true),
  ];
}

interface FootprintRun {
  system: string;
  round: number;
  startupMs: number;
  masterRss: number | null;
  serverRss: number[];
  masterAnon: number | null;
  serverAnon: number[];
  error?: string;
}

async function runOne(sys: SystemDef, round: number): Promise<FootprintRun> {
  const port = await freePort();
  const t0 = now();
  const s = sys.start(port);
  try {
    await until(
      `${sys.name} to answer`,
      async () => (await getJson(port, '/', 1000)).status === 200,
      30000,
      5,
    );
    const startupMs = now() - t0;
    for (let i = 0; i < 500; i++) await getJson(port, '/', 5000);
    await sleep(1000);
    const servers = s.servers();
    return {
      system: sys.name,
      round,
      startupMs: Math.round(startupMs),
      masterRss: s.master === null ? null : (rssBytes(s.master) ?? null),
      serverRss: servers.map((p) => rssBytes(p) ?? Number.NaN),
      masterAnon: s.master === null ? null : (anonBytes(s.master) ?? null),
      serverAnon: servers.map((p) => anonBytes(p) ?? Number.NaN),
    };
  } catch (err) {
    return {
      system: sys.name,
      round,
      startupMs: Number.NaN,
      masterRss: null,
      serverRss: [],
      masterAnon: null,
      serverAnon: [],
      error: (err as Error).message.split('\n')[0]!,
    };
  } finally {
    await s.proc.stop('SIGTERM', 3000);
  }
}

function descendants(pid: number): number[] {
  const out: number[] = [];
  for (const c of childPids(pid)) out.push(c, ...descendants(c));
  return out;
}

const treeRss = (pid: number): number =>
  [pid, ...descendants(pid)].reduce((a, p) => a + (rssBytes(p) ?? 0), 0);

interface PeakRun {
  workers: number;
  bootMs: number;
  steadyTreeRss: number;
  steadyMasterRss: number;
  peakTreeRss: number;
  peakProcesses: number;
  ratio: number;
  restartMs: number;
  error?: string;
}

async function peakRun(workers: number, bootMs: number): Promise<PeakRun> {
  const root = tmpDir('nserve-bench-peak-');
  writeRelease(root, 'v1', { bootMs, requestMs: 2 });
  writeRelease(root, 'v2', { bootMs, requestMs: 2 });
  switchRelease(root, 'v1');
  const port = await freePort();
  const proc = startNode(NSERVE_CLI, [
    'start',
    'app.mjs',
    '--directory',
    path.join(root, 'current'),
    '--bind',
    `tcp://127.0.0.1:${port}`,
    '-w',
    String(workers),
  ]);
  try {
    await proc.waitForEvent('server.booted', 60000);
    await until('serving', async () => (await getJson(port, '/', 1000)).status === 200, 30000);
    for (let i = 0; i < 200; i++) await getJson(port, '/', 5000);
    await sleep(1000);
    const steady: number[] = [];
    const steadyMaster: number[] = [];
    for (let i = 0; i < 20; i++) {
      steady.push(treeRss(proc.pid));
      steadyMaster.push(rssBytes(proc.pid) ?? Number.NaN);
      await sleep(50);
    }
    let peak = 0;
    let peakProcesses = 0;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const pids = [proc.pid, ...descendants(proc.pid)];
        const rss = pids.reduce((a, p) => a + (rssBytes(p) ?? 0), 0);
        if (rss > peak) {
          peak = rss;
          peakProcesses = pids.length;
        }
        await sleep(20);
      }
    })();
    const t = now();
    const outcome = await restart(proc, 'hot', { release: { root, version: 'v2' }, deadlineMs: 60000 });
    const restartMs = proc.receivedAt(outcome.line) - t;
    await sleep(2000);
    sampling = false;
    await sampler;
    const s = median(steady);
    return {
      workers,
      bootMs,
      steadyTreeRss: s,
      steadyMasterRss: median(steadyMaster),
      peakTreeRss: peak,
      peakProcesses,
      ratio: Math.round((peak / s) * 100) / 100,
      restartMs: Math.round(restartMs),
    };
  } catch (err) {
    return {
      workers,
      bootMs,
      steadyTreeRss: Number.NaN,
      steadyMasterRss: Number.NaN,
      peakTreeRss: Number.NaN,
      peakProcesses: 0,
      ratio: Number.NaN,
      restartMs: Number.NaN,
      error: (err as Error).message.split('\n')[0]!,
    };
  } finally {
    await proc.stop('SIGTERM', 5000);
  }
}

export async function footprintSuite(opts: FootprintOptions): Promise<void> {
  const m = machine();
  const started = Date.now();
  const systems = footprintSystems(opts.before);
  console.log(
    `footprint suite: ${systems.length} systems × ${opts.rounds} rounds (hello app, no boot delay)`,
  );
  const runs: FootprintRun[] = [];
  for (let round = 1; round <= opts.rounds; round++) {
    const order = systems.map((_, i) => systems[(i + round - 1) % systems.length]!);
    for (const sys of order) {
      const run = await runOne(sys, round);
      runs.push(run);
      console.log(
        `  round ${round} ${sys.name.padEnd(14)} start → first response ${fmtMs(run.startupMs)}  master ${run.masterRss === null ? '—' : fmtMB(run.masterRss)} (anon ${run.masterAnon === null ? '—' : fmtMB(run.masterAnon)})  servers ${run.serverRss.map(fmtMB).join(', ')} (anon ${run.serverAnon.map(fmtMB).join(', ')})${run.error ? ` ERROR ${run.error}` : ''}`,
      );
    }
  }
  const med = (name: string, f: (r: FootprintRun) => number): number =>
    median(runs.filter((r) => r.system === name && !r.error).map(f));
  const startup = (name: string): number => med(name, (r) => r.startupMs);
  const server = (name: string): number => med(name, (r) => median(r.serverRss));
  const master = (name: string): number => med(name, (r) => r.masterRss ?? Number.NaN);
  const serverAnon = (name: string): number => med(name, (r) => median(r.serverAnon));
  const masterAnon = (name: string): number => med(name, (r) => r.masterAnon ?? Number.NaN);
  // Ratios per round (the systems of a round ran back to back), then the median.
  const ratio = (a: string, b: string, f: (r: FootprintRun) => number): ReturnType<typeof spread> =>
    spread(
      Array.from({ length: opts.rounds }, (_, i) => {
        const ra = runs.find((r) => r.system === a && r.round === i + 1 && !r.error);
        const rb = runs.find((r) => r.system === b && r.round === i + 1 && !r.error);
        return ra && rb ? f(ra) / f(rb) : Number.NaN;
      }),
    );
  const fx = (x: number): string => (Number.isFinite(x) ? `${x.toFixed(2)}×` : '—');
  const header = [
    'system',
    'start → first response',
    'vs plain node',
    'master RSS',
    'master RssAnon',
    'serving process RSS',
    'vs plain node',
    'serving process RssAnon',
    'vs plain node',
  ];
  const rows = systems.map((sys) => {
    const rs = runs.filter((r) => r.system === sys.name && !r.error);
    return [
      sys.label,
      fmtSpread(spread(rs.map((r) => r.startupMs)), fmtMs),
      sys.name === 'node'
        ? '1.00×'
        : fmtSpread(
            ratio(sys.name, 'node', (r) => r.startupMs),
            fx,
          ),
      sys.name === 'node' || sys.name.startsWith('nserve-single')
        ? '—'
        : fmtSpread(spread(rs.map((r) => r.masterRss ?? Number.NaN)), fmtMB),
      sys.name === 'node' || sys.name.startsWith('nserve-single')
        ? '—'
        : fmtSpread(spread(rs.map((r) => r.masterAnon ?? Number.NaN)), fmtMB),
      fmtSpread(spread(rs.map((r) => median(r.serverRss))), fmtMB),
      sys.name === 'node' ? '—' : signedMB(server(sys.name) - server('node')),
      fmtSpread(spread(rs.map((r) => median(r.serverAnon))), fmtMB),
      sys.name === 'node' ? '—' : signedMB(serverAnon(sys.name) - serverAnon('node')),
    ];
  });
  console.log(`\nStart-up and memory, hello app (median (min–max) over ${opts.rounds} rounds):\n`);
  console.log(table(header, rows));
  for (const name of ['nserve-w2', 'nserve-w2-before', 'nserve-w2-ctl'].filter((n) =>
    systems.some((s) => s.name === n),
  )) {
    console.log(
      `\n${name} master vs Node cluster primary: RSS ${fmtMB(master(name))} vs ${fmtMB(master('cluster'))} (${signedMB(master(name) - master('cluster'))}), RssAnon ${fmtMB(masterAnon(name))} vs ${fmtMB(masterAnon('cluster'))} (${signedMB(masterAnon(name) - masterAnon('cluster'))})`,
    );
    console.log(
      `${name} worker vs Node cluster worker: RSS ${fmtMB(server(name))} vs ${fmtMB(server('cluster'))} (${signedMB(server(name) - server('cluster'))}), RssAnon ${fmtMB(serverAnon(name))} vs ${fmtMB(serverAnon('cluster'))} (${signedMB(serverAnon(name) - serverAnon('cluster'))})`,
    );
  }
  console.log(
    `start → first response, nserve single vs plain node: ${fx(startup('nserve-single') / startup('node'))} (medians); nserve -w 2 vs Node cluster: ${fx(startup('nserve-w2') / startup('cluster'))}`,
  );
  let peak: PeakRun[] = [];
  if (opts.peak) {
    console.log(`\npeak RSS through a cluster hot restart, -w ${opts.peakWorkers}, boot ${opts.bootMs} ms:`);
    peak = [];
    for (let i = 0; i < Math.max(1, Math.min(opts.rounds, 3)); i++) {
      const p = await peakRun(opts.peakWorkers, opts.bootMs);
      peak.push(p);
      console.log(
        `  steady ${fmtMB(p.steadyTreeRss)} (master ${fmtMB(p.steadyMasterRss)}), peak ${fmtMB(p.peakTreeRss)} with ${p.peakProcesses} processes: ${fx(p.ratio)} steady; restart took ${fmtMs(p.restartMs)}${p.error ? ` ERROR ${p.error}` : ''}`,
      );
    }
  }
  m.loadavgAtEnd = os.loadavg().map((x) => Number(x.toFixed(2)));
  writeResult(opts.out, {
    suite: 'footprint',
    command: commandLine(),
    machine: m,
    options: opts,
    elapsedS: Math.round((Date.now() - started) / 1000),
    systems: systems.map((s) => ({ name: s.name, label: s.label })),
    summary: {
      startupMs: Object.fromEntries(systems.map((s) => [s.name, startup(s.name)])),
      serverRssBytes: Object.fromEntries(systems.map((s) => [s.name, server(s.name)])),
      masterRssBytes: Object.fromEntries(
        systems
          .filter((s) => s.name === 'cluster' || s.name.startsWith('nserve-w2'))
          .map((s) => [s.name, master(s.name)]),
      ),
      serverAnonBytes: Object.fromEntries(systems.map((s) => [s.name, serverAnon(s.name)])),
      masterAnonBytes: Object.fromEntries(
        systems
          .filter((s) => s.name === 'cluster' || s.name.startsWith('nserve-w2'))
          .map((s) => [s.name, masterAnon(s.name)]),
      ),
      startupRatioSingleVsNode: ratio('nserve-single', 'node', (r) => r.startupMs),
      startupRatioW2VsCluster: ratio('nserve-w2', 'cluster', (r) => r.startupMs),
    },
    markdown: markdownTable(header, rows),
    runs,
    peak,
  });
  formatForRepo([opts.out]);
  console.log(`\nresults: ${path.relative(process.cwd(), opts.out)}`);
}
