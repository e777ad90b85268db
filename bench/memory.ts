// Suite `memory`: a cluster restart under a cgroup v1 memory limit, per strategy. `nserve -w W` (default
// 4) with an app that holds --hold-mb of anonymous memory per process runs in a memory cgroup made for
// the run (under the bench's own cgroup, so the machine's limits still apply); once it serves, the
// limit is set to a multiple of its steady working set, load runs (keep-alive and new-connection clients
// counting every failed request), the new release is deployed and a restart signalled:
//   - hot       `USR2` with room for N old and N new workers (limit 2.5× steady): a plain hot restart;
//   - staged    `USR2` at 1.5× steady: the default --restart-overflow, staged;
//   - phased    `USR2` at 1.5× steady with --restart-overflow phased: a phased restart instead;
//   - refused   `USR2` with room for half a worker more: refused, the old code serving.
// Reported per strategy: the strategy nserve chose, whether the new code served, the cgroup's peak usage
// (memory.max_usage_in_bytes: page cache included, so an upper bound of the working set) against its
// steady working set and the limit, the cgroup's OOM kills, failed requests, and the restart's time.
// Needs root and the cgroup v1 memory controller (/sys/fs/cgroup/memory); says so and stops otherwise.
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  MB,
  makeCgroup,
  oomKills,
  readNumber,
  setLimit,
  whyNoCgroups,
  workingSet,
} from '../test/helpers/cgroup.js';
import { Load } from '../test/helpers/load.js';
import { switchRelease, writeRelease } from '../test/helpers/releases.js';
import { signalRestart } from '../test/helpers/restart.js';
import { commandLine, formatForRepo, machine, writeResult } from './lib/machine.js';
import { freePort, getJson, NSERVE_CLI, now, type Proc, start, tmpDir, waitServing } from './lib/proc.js';
import { fmtMB, fmtMs, markdownTable, median } from './lib/stats.js';

export const MEMORY_STRATEGIES = ['hot', 'staged', 'phased', 'refused'] as const;
type Strategy = (typeof MEMORY_STRATEGIES)[number];

export interface MemoryOptions {
  rounds: number;
  workers: number;
  holdMb: number;
  strategies: string[];
  out: string;
}

interface Run {
  strategy: Strategy;
  round: number;
  chose: string | null;
  newCode: boolean;
  steady: number;
  limit: number;
  peak: number;
  oomKills: number;
  ok: number;
  failed: number;
  restartMs: number;
  verdict: string;
}

/** The limit of each strategy, from the steady working set and one worker's share. */
function limitFor(strategy: Strategy, steady: number, holdMb: number): number {
  if (strategy === 'hot') return Math.round(steady * 2.5);
  if (strategy === 'refused') return steady + Math.round((holdMb / 2) * MB);
  return Math.round(steady * 1.5);
}

function releasesFor(holdMb: number): string {
  const root = tmpDir('nserve-bench-memory-');
  for (const v of ['v1', 'v2']) {
    const dir = writeRelease(root, v, {});
    const app = path.join(dir, 'app.mjs');
    fs.writeFileSync(
      app,
      `globalThis.held = Buffer.alloc(${holdMb * MB}, 1);\n${fs.readFileSync(app, 'utf8')}`,
    );
  }
  switchRelease(root, 'v1');
  return root;
}

async function runOnce(strategy: Strategy, round: number, o: MemoryOptions): Promise<Run> {
  const cleanups: (() => unknown)[] = [];
  const cgroup = makeCgroup({ after: (fn: () => unknown) => cleanups.push(fn) } as never, 4096 * MB);
  const root = releasesFor(o.holdMb);
  const port = await freePort();
  let proc: Proc | undefined;
  try {
    const args = [NSERVE_CLI, 'start', 'app.mjs', '--directory', path.join(root, 'current')];
    args.push('-w', String(o.workers), '--bind', `tcp://127.0.0.1:${port}`);
    if (strategy === 'phased') args.push('--restart-overflow', 'phased');
    proc = start('/bin/sh', [
      '-c',
      `echo $$ > ${cgroup}/cgroup.procs && exec "$@"`,
      'sh',
      process.execPath,
      ...args,
    ]);
    await waitServing(port, 30_000);
    await new Promise((r) => setTimeout(r, 1000));
    const steady = workingSet(cgroup);
    const limit = limitFor(strategy, steady, o.holdMb);
    setLimit(cgroup, limit);
    fs.writeFileSync(path.join(cgroup, 'memory.max_usage_in_bytes'), '0');
    const load = new Load({ port, keepAlive: 4, newConnection: 2 });
    await load.roundsSince(now(), 3);
    switchRelease(root, 'v2');
    const mark = proc.lines.length;
    const t0 = Date.now();
    const outcome = await signalRestart(proc, 'hot', { deadlineMs: 60_000 });
    const restartMs = Date.now() - t0;
    await load.roundsSince(now(), 3);
    const result = await load.stop();
    const plan = proc.lines.slice(mark).find((l) => l.event === 'restart.memory-plan');
    const served = await fetchVersion(port);
    return {
      strategy,
      round,
      chose:
        plan !== undefined
          ? String(plan.strategy)
          : outcome.line.code === 'ERR_NSERVE_RESTART_NO_FIT'
            ? 'refused'
            : null,
      newCode: outcome.ok && served === 'v2',
      steady,
      limit,
      peak: readNumber(path.join(cgroup, 'memory.max_usage_in_bytes')),
      oomKills: oomKills(cgroup),
      ok: result.ok,
      failed: result.failed,
      restartMs,
      verdict: String(outcome.line.msg).slice(0, 200),
    };
  } finally {
    await proc?.stop();
    for (const fn of cleanups.reverse()) await fn();
    fs.rmSync(root, { recursive: true, force: true });
  }
}

async function fetchVersion(port: number): Promise<string | undefined> {
  try {
    const version = (await getJson(port)).body.version;
    return typeof version === 'string' ? version : undefined;
  } catch {
    return undefined;
  }
}

export async function memorySuite(o: MemoryOptions): Promise<void> {
  const why = whyNoCgroups();
  if (why !== undefined) {
    process.stdout.write(`memory: skipped: cgroups cannot be made here (${why})\n`);
    return;
  }
  for (const s of o.strategies)
    if (!(MEMORY_STRATEGIES as readonly string[]).includes(s))
      throw new Error(
        `--systems: expected some of ${MEMORY_STRATEGIES.join(', ')}, got ${JSON.stringify(s)}`,
      );
  const runs: Run[] = [];
  for (let round = 1; round <= o.rounds; round++)
    for (const s of o.strategies as Strategy[]) {
      const run = await runOnce(s, round, o);
      runs.push(run);
      process.stdout.write(
        `round ${round} ${s}: chose ${run.chose} · new code ${run.newCode} · peak ${fmtMB(run.peak)} of ${fmtMB(run.limit)} (steady ${fmtMB(run.steady)}) · OOM kills ${run.oomKills} · failed ${run.failed}/${run.ok + run.failed} · ${fmtMs(run.restartMs)}\n`,
      );
    }
  const rows = (o.strategies as Strategy[]).map((s) => {
    const mine = runs.filter((r) => r.strategy === s);
    const m = (f: (r: Run) => number): number => median(mine.map(f));
    return [
      s,
      [...new Set(mine.map((r) => r.chose ?? '-'))].join('/'),
      `${mine.filter((r) => r.newCode).length}/${mine.length}`,
      `${fmtMB(m((r) => r.limit))} (${(m((r) => r.limit) / m((r) => r.steady)).toFixed(2)}×)`,
      `${fmtMB(m((r) => r.peak))} (${(m((r) => r.peak) / m((r) => r.steady)).toFixed(2)}×)`,
      String(mine.reduce((n, r) => n + r.oomKills, 0)),
      `${mine.reduce((n, r) => n + r.failed, 0)}/${mine.reduce((n, r) => n + r.ok + r.failed, 0)}`,
      fmtMs(m((r) => r.restartMs)),
    ];
  });
  const header = [
    'case',
    'nserve chose',
    'new code serves',
    'limit (× steady)',
    'peak usage (× steady)',
    'OOM kills',
    'failed requests',
    'signal → done',
  ];
  const md = markdownTable(header, rows);
  process.stdout.write(`\n${md}\n`);
  writeResult(o.out, {
    suite: 'memory',
    command: commandLine(),
    machine: machine(),
    options: o,
    runs,
    table: md,
  });
  formatForRepo([o.out]);
}
