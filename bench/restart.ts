// Suite `restart`: restarts under load, the same app and the same load for every system.
//
// App: test/helpers/releases.ts's versioned fixture (boot delay --boot-ms, ~2 ms per request, replies
// JSON {version, pid}); a release directory per restart and a `current` symlink switched before each signal.
// Puma runs its Rack twin (bench/fixtures/rack/config.ru: the same boot, routes and replies), copied into
// each release. "New code" is read against the app's own boot outside any manager (spawn → first
// response), measured in every round of the same run, for the Node app and for the Rack app.
// Load (bench/lib/load.ts): 6 keep-alive GET clients, 3 new-connection GET clients, 2 new-connection POST
// clients with 16,256-byte bodies, all looping, every request accounted for.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Done, Failure } from '../test/helpers/load.js';
import { Load } from '../test/helpers/load.js';
import { switchRelease, writeRelease } from '../test/helpers/releases.js';
import { restart } from '../test/helpers/restart.js';
import {
  commandLine,
  describeLoad,
  formatForRepo,
  type Machine,
  machine,
  writeResult,
  writeText,
} from './lib/machine.js';
import * as pm2 from './lib/pm2.js';
import {
  FIXTURES,
  freePort,
  getJson,
  isEvent,
  type LogLine,
  NSERVE_CLI,
  now,
  type Proc,
  sleep,
  startNode,
  start as startProcess,
  tmpDir,
  until,
  waitServing,
} from './lib/proc.js';
import { requirePuma } from './lib/setup.js';
import {
  fmtMs,
  fmtNum,
  fmtSpread,
  markdownTable,
  median,
  quantileSorted,
  spread,
  table,
} from './lib/stats.js';
import { restartChart } from './lib/svg.js';

const RACK_APP = path.join(FIXTURES, 'rack', 'config.ru');

export interface RestartOptions {
  rounds: number;
  restarts: number;
  bootMs: number;
  /** The app's boot for single-mode systems (default: bootMs). */
  singleBootMs: number;
  timeoutMs: number;
  steadyMs: number;
  gapMs: number;
  systems: string[];
  out: string;
  quick: boolean;
}

interface Ctx {
  root: string;
  port: number;
  bootMs: number;
  tag: string;
}

interface Running {
  /**
   * Trigger one restart; resolves when the system reports it complete (nserve's phased restart also says
   * how long each replacement took from its spawn to accepting on its slots).
   */
  restart(): Promise<{ doneAt: number; replacementsMs?: number[] }>;
  /** Before the signal, off the clock: nserve --standby waits until its standbys are ready again. */
  prepare?(): Promise<void>;
  stop(): Promise<void>;
  pids(): number[];
}

/** Children of `pid` titled `nserve standby` (ready to be woken: src/cluster/standby-wake.ts). */
function readyStandbys(pid: number): number {
  let n = 0;
  for (const child of fs.readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/)) {
    try {
      if (child !== '' && fs.readFileSync(`/proc/${child}/cmdline`, 'utf8').startsWith('nserve standby')) n++;
    } catch {
      // gone meanwhile
    }
  }
  return n;
}

interface SystemDef {
  name: string;
  label: string;
  how: string;
  /** A single process (no workers): the app boots with --single-boot-ms. */
  single?: boolean;
  /** Runs the Rack twin of the app (Puma): read against the Rack app's own boot. */
  rack?: boolean;
  start(ctx: Ctx): Promise<Running>;
}

function nserveSystem(
  name: string,
  label: string,
  workers: number,
  signal: NodeJS.Signals,
  extra: string[] = [],
): SystemDef {
  return {
    name,
    label,
    single: workers === 0,
    how: `nserve start app.mjs --directory current${workers ? ` -w ${workers}` : ''}${extra.map((a) => ` ${a}`).join('')}; kill -${signal.slice(3)} PID`,
    async start(ctx) {
      const proc = startNode(NSERVE_CLI, [
        'start',
        'app.mjs',
        '--directory',
        path.join(ctx.root, 'current'),
        '--bind',
        `tcp://127.0.0.1:${ctx.port}`,
        ...(workers > 0 ? ['-w', String(workers)] : []),
        ...extra,
      ]);
      await bootedOrKilled(proc, () => proc.waitForEvent('server.booted', 30000), ctx.port);
      return {
        async restart() {
          const { line, lines } = await restart(proc, signal === 'SIGUSR1' ? 'phased' : 'hot', {
            deadlineMs: 60000,
          });
          // Each worker replaced in a phased restart carries ms: that worker's spawn → accepting.
          const replacementsMs = lines
            .filter((l) => isEvent(l, 'restart.phased.worker-replaced'))
            .map((l) => Number(l.ms));
          return { doneAt: proc.receivedAt(line), replacementsMs };
        },
        async prepare() {
          const at = extra.indexOf('--standby');
          if (at === -1) return;
          const want = Number(extra[at + 1]);
          const deadline = Date.now() + 30_000;
          while (readyStandbys(proc.pid) < want && Date.now() < deadline) await sleep(50);
        },
        stop: () => proc.stop('SIGTERM', 3000),
        pids: () => [proc.pid],
      };
    },
  };
}

/** Wait until `booted()` (the line that says `proc` booted) and the port answers; kill it if not. */
async function bootedOrKilled(proc: Proc, booted: () => Promise<unknown>, port: number): Promise<void> {
  try {
    await booted();
    await waitServing(port);
  } catch (err) {
    await proc.stop('SIGKILL', 0);
    throw err;
  }
}

function clusterSystem(): SystemDef {
  return {
    name: 'node-cluster',
    label: 'Node cluster, rolling restart',
    how: 'bench/fixtures/cluster-primary.mjs: fork replacement, wait listening, old.disconnect()',
    async start(ctx) {
      const proc: Proc = startNode(path.join(FIXTURES, 'cluster-primary.mjs'), [], {
        PORT: String(ctx.port),
        WORKERS: '2',
        BENCH_APP: path.join(ctx.root, 'current', 'app.mjs'),
      });
      await bootedOrKilled(proc, () => proc.waitForMsg('booted', 30000), ctx.port);
      return {
        async restart() {
          const mark = proc.lines.length;
          proc.signal('SIGUSR2');
          const line = await proc.waitForMsg(/^rolling restart:? (done|failed)/, 60000, mark);
          if (/failed/.test(String(line.msg))) throw new Error(String(line.msg));
          return { doneAt: proc.receivedAt(line) };
        },
        stop: () => proc.stop('SIGTERM', 2000),
        pids: () => [proc.pid],
      };
    },
  };
}

function pm2System(name: string, label: string, action: 'reload' | 'restart', waitReady: boolean): SystemDef {
  return {
    name,
    label,
    how: `pm2 start ecosystem (exec_mode cluster, instances 2${waitReady ? ', wait_ready, listen_timeout 10000' : ''}); pm2 ${action}`,
    async start(ctx) {
      const app = await pm2.startApp({
        name: `${name}-${ctx.tag}`,
        script: path.join(FIXTURES, 'serve.mjs'),
        instances: 2,
        waitReady,
        env: { PORT: String(ctx.port), BENCH_APP: path.join(ctx.root, 'current', 'app.mjs') },
      });
      try {
        await waitServing(ctx.port, 30000);
      } catch (err) {
        await pm2.deleteApp(app);
        throw new Error(`${(err as Error).message}\n${pm2.pm2ErrLog(app)}`);
      }
      return {
        async restart() {
          if (action === 'reload') await pm2.reload(app);
          else await pm2.restart(app);
          return { doneAt: now() };
        },
        stop: () => pm2.deleteApp(app),
        pids: () => [pm2.pm2DaemonPid() ?? 0],
      };
    },
  };
}

/**
 * Puma (Debian's `puma`, cluster mode, two workers, no preload_app so that phased restarts work): USR2 is
 * its hot restart (the workers stop, the master re-execs and forks new ones: nothing answers meanwhile),
 * USR1 its phased restart (one worker at a time is stopped, then forked again and loads the new code).
 * Done when every worker of the new code has logged "booted".
 */
function pumaSystem(name: string, label: string, signal: 'SIGUSR1' | 'SIGUSR2'): SystemDef {
  const workers = 2;
  return {
    name,
    label,
    rack: true,
    how: `puma -C puma.rb (workers ${workers}, threads 5, directory current, rackup current/config.ru); kill -${signal.slice(3)} PID`,
    async start(ctx) {
      const config = path.join(ctx.root, 'puma.rb');
      const current = path.join(ctx.root, 'current');
      // Absolute paths: Puma changes to `directory` before re-reading its config on a hot restart.
      fs.writeFileSync(
        config,
        [
          `workers ${workers}`,
          'threads 5, 5',
          `bind 'tcp://127.0.0.1:${ctx.port}'`,
          `directory '${current}'`,
          `rackup '${path.join(current, 'config.ru')}'`,
          '',
        ].join('\n'),
      );
      const proc = startProcess('puma', ['-C', config], {
        env: { BENCH_BOOT_MS: String(ctx.bootMs), BENCH_REQUEST_MS: '2' },
        cwd: ctx.root,
      });
      await bootedOrKilled(proc, () => proc.waitForMsg(/Use Ctrl-C to stop$/, 30000), ctx.port);
      return {
        async restart() {
          let from = proc.lines.length;
          proc.signal(signal);
          let line: LogLine | undefined;
          for (let booted = 0; booted < workers; booted++) {
            line = await proc.waitForMsg(/- Worker \d+ \(PID: \d+\) booted in/, 60000, from);
            from = proc.lines.indexOf(line) + 1;
          }
          return { doneAt: proc.receivedAt(line!) };
        },
        stop: () => proc.stop('SIGTERM', 3000),
        pids: () => [proc.pid],
      };
    },
  };
}

export const RESTART_SYSTEMS: SystemDef[] = [
  nserveSystem('nserve-hot', 'nserve hot restart, single (USR2)', 0, 'SIGUSR2'),
  nserveSystem('nserve-hot-w2', 'nserve hot restart, -w 2 (USR2)', 2, 'SIGUSR2'),
  nserveSystem('nserve-phased-w2', 'nserve phased restart, -w 2 (USR1)', 2, 'SIGUSR1'),
  nserveSystem('nserve-hot-w2-standby', 'nserve hot restart, -w 2 --standby 2 (USR2)', 2, 'SIGUSR2', [
    '--standby',
    '2',
  ]),
  nserveSystem('nserve-phased-w2-standby', 'nserve phased restart, -w 2 --standby 1 (USR1)', 2, 'SIGUSR1', [
    '--standby',
    '1',
  ]),
  nserveSystem('nserve-phased-w2-c2', 'nserve phased restart, -w 2, --phase-concurrency 2', 2, 'SIGUSR1', [
    '--phase-concurrency',
    '2',
  ]),
  nserveSystem('nserve-phased-w4', 'nserve phased restart, -w 4 (USR1)', 4, 'SIGUSR1'),
  nserveSystem('nserve-phased-w4-c2', 'nserve phased restart, -w 4, --phase-concurrency 2', 4, 'SIGUSR1', [
    '--phase-concurrency',
    '2',
  ]),
  pumaSystem('puma-hot', 'Puma hot restart, 2 workers (USR2)', 'SIGUSR2'),
  pumaSystem('puma-phased', 'Puma phased restart, 2 workers (USR1)', 'SIGUSR1'),
  clusterSystem(),
  pm2System('pm2-reload', 'PM2 reload, -i 2, wait_ready', 'reload', true),
  pm2System('pm2-restart', 'PM2 restart, -i 2, wait_ready', 'restart', true),
  pm2System('pm2-reload-nowait', 'PM2 reload, -i 2, no wait_ready', 'reload', false),
  pm2System('pm2-restart-nowait', 'PM2 restart, -i 2, no wait_ready', 'restart', false),
];
/** Opt-in (--systems): the phase-concurrency comparison. */
const OPT_IN = ['pm2-restart-nowait', 'nserve-phased-w2-c2', 'nserve-phased-w4', 'nserve-phased-w4-c2'];
export const DEFAULT_RESTART_SYSTEMS = RESTART_SYSTEMS.filter((s) => !OPT_IN.includes(s.name)).map(
  (s) => s.name,
);

// ── one run ─────────────────────────────────────────────────────────────────────────────────────────────

interface RestartRecord {
  version: string;
  signalAt: number;
  doneAt: number;
  firstNewAt?: number;
  /** nserve phased: each replacement's spawn → accepting. */
  replacementsMs?: number[];
  error?: string;
}

export interface RestartMetrics {
  signalMs: number;
  doneMs: number;
  firstNewMs: number;
  lastOldMs: number;
  windowMs: number;
  silenceMs: number;
  failed: number;
  /** Responses per second from the signal until the restart was done and the new code answered. */
  rps: number;
  /** Requests started after the restart was reported done, answered by older code. */
  stale: number;
  /** nserve phased: each replacement's spawn → accepting on its slots (ms), from the master's log. */
  replacementsMs?: number[];
  error?: string;
}

export interface RunResult {
  system: string;
  round: number;
  /** The app's configured boot in this run. */
  bootMs: number;
  ok: number;
  failed: number;
  byKind: Record<string, number>;
  failedOutsideWindows: number;
  durationMs: number;
  steady: { n: number; p50: number; p99: number };
  window: { n: number; p50: number; p99: number; max: number };
  maxLatencyMs: number;
  silenceMs: number;
  silenceOverallMs: number;
  rps: number;
  steadyRps: number;
  restartRps: number;
  stale: number;
  restarts: RestartMetrics[];
  pidsAnswering: number;
  errors: string[];
  failureSamples: { t: number; kind: string; client: string; ms: number; detail: string }[];
  timeline: { binMs: number; from: number; max: number[]; p50: number[]; count: number[] };
  failuresAt: { t: number; kind: string }[];
  error?: string;
}

async function runOne(sys: SystemDef, round: number, opts: RestartOptions): Promise<RunResult> {
  const root = tmpDir('nserve-bench-rel-');
  const bootMs = sys.single === true ? opts.singleBootMs : opts.bootMs;
  const versions = Array.from({ length: opts.restarts + 1 }, (_, i) => `v${i + 1}`);
  for (const v of versions) {
    const dir = writeRelease(root, v, { bootMs, requestMs: 2 });
    if (sys.rack === true) fs.copyFileSync(RACK_APP, path.join(dir, 'config.ru'));
  }
  switchRelease(root, 'v1');
  const port = await freePort();
  const running = await sys.start({ root, port, bootMs, tag: `r${round}` });
  const load = new Load({ port, keepAlive: 6, newConnection: 3, post: 2, timeoutMs: opts.timeoutMs });
  const records: RestartRecord[] = [];
  let error: string | undefined;
  try {
    await sleep(opts.steadyMs);
    for (const version of versions.slice(1)) {
      await running.prepare?.();
      switchRelease(root, version);
      const signalAt = now();
      const rec: RestartRecord = { version, signalAt, doneAt: Number.NaN };
      records.push(rec);
      try {
        const outcome = await running.restart();
        rec.doneAt = outcome.doneAt;
        if (outcome.replacementsMs !== undefined) rec.replacementsMs = outcome.replacementsMs;
        const first = await Promise.race([load.firstFrom(version, signalAt), sleep(20000)]);
        if (!first) throw new Error(`no response from ${version} within 20 s of the restart completing`);
        rec.firstNewAt = first.end;
      } catch (err) {
        rec.error = (err as Error).message.split('\n')[0]!;
        error = rec.error;
        break;
      }
      await sleep(opts.gapMs);
    }
  } finally {
    await load.stop();
    await running.stop().catch(() => undefined);
    fs.rmSync(root, { recursive: true, force: true });
  }
  return { ...analyze(sys.name, round, load, records, error), bootMs };
}

function analyze(
  system: string,
  round: number,
  load: Load,
  records: RestartRecord[],
  error: string | undefined,
): RunResult {
  const done = [...load.done].sort((a, b) => a.end - b.end);
  const ends = done.map((d) => d.end);
  const failures = load.failures;
  const t0 = records[0]?.signalAt ?? load.stoppedAt;
  // Each restart's window: from the signal to whichever is last of: the system saying it is done, the
  // first answer from the new code, the last answer from the old code (old workers that keep serving).
  const windows = records.map((rec, i) => {
    const nextSignal = records[i + 1]?.signalAt ?? Number.POSITIVE_INFINITY;
    let lastOld = rec.signalAt;
    for (const d of done) {
      if (d.end >= rec.signalAt && d.end < nextSignal && d.version !== rec.version && d.end > lastOld)
        lastOld = d.end;
    }
    const end = Math.max(
      Number.isFinite(rec.doneAt) ? rec.doneAt : rec.signalAt,
      rec.firstNewAt ?? rec.signalAt,
      lastOld,
    );
    return { rec, start: rec.signalAt, end: Math.min(end, load.stoppedAt), lastOld };
  });
  const inAnyWindow = (start: number, end: number): boolean =>
    windows.some((w) => start <= w.end && end >= w.start);

  const restarts: RestartMetrics[] = windows.map((w) => {
    // Longest stretch with no response at all, from the signal to the first response after the window.
    let j = lowerBound(ends, w.start);
    let prev = w.start;
    let silence = 0;
    for (; j < ends.length; j++) {
      silence = Math.max(silence, ends[j]! - prev);
      prev = ends[j]!;
      if (ends[j]! > w.end) break;
    }
    if (j >= ends.length) silence = Math.max(silence, load.stoppedAt - prev);
    const busyEnd = Math.max(
      Number.isFinite(w.rec.doneAt) ? w.rec.doneAt : w.start,
      w.rec.firstNewAt ?? w.start,
    );
    const served = lowerBound(ends, busyEnd) - lowerBound(ends, w.start);
    const nextSignal = windows[windows.indexOf(w) + 1]?.start ?? Number.POSITIVE_INFINITY;
    const stale = done.filter(
      (d) =>
        d.start > w.rec.doneAt &&
        d.start < nextSignal &&
        versionNumber(d.version) < versionNumber(w.rec.version),
    ).length;
    return {
      signalMs: round1(w.start - t0),
      doneMs: round1(w.rec.doneAt - w.start),
      firstNewMs: round1((w.rec.firstNewAt ?? Number.NaN) - w.start),
      lastOldMs: round1(w.lastOld - w.start),
      windowMs: round1(w.end - w.start),
      silenceMs: round1(silence),
      failed: failures.filter((f) => f.start <= w.end && f.end >= w.start).length,
      rps: Math.round((served * 1000) / Math.max(1, busyEnd - w.start)),
      stale,
      ...(w.rec.replacementsMs === undefined ? {} : { replacementsMs: w.rec.replacementsMs }),
      ...(w.rec.error ? { error: w.rec.error } : {}),
    };
  });

  const windowLat = done
    .filter((d) => inAnyWindow(d.start, d.end))
    .map((d) => d.end - d.start)
    .sort((a, b) => a - b);
  const steadyLat = done
    .filter((d) => d.start >= load.startedAt + 300 && d.end < t0)
    .map((d) => d.end - d.start)
    .sort((a, b) => a - b);
  const allLat = done.map((d) => d.end - d.start);
  const steadyFrom = load.startedAt + 300;
  const steadyN = lowerBound(ends, t0) - lowerBound(ends, steadyFrom);
  let busyMs = 0;
  let busyServed = 0;
  for (const r of restarts) {
    const ms = Math.max(r.doneMs, Number.isFinite(r.firstNewMs) ? r.firstNewMs : 0);
    if (!Number.isFinite(ms)) continue;
    busyMs += ms;
    busyServed += (r.rps * ms) / 1000;
  }
  let silenceOverall = 0;
  for (let i = 1; i < ends.length; i++) silenceOverall = Math.max(silenceOverall, ends[i]! - ends[i - 1]!);

  const byKind: Record<string, number> = {};
  for (const f of failures) byKind[f.kind] = (byKind[f.kind] ?? 0) + 1;

  return {
    system,
    round,
    bootMs: Number.NaN,
    ok: done.length,
    failed: failures.length,
    byKind,
    failedOutsideWindows: failures.filter((f) => !inAnyWindow(f.start, f.end)).length,
    durationMs: round1(load.stoppedAt - load.startedAt),
    steady: {
      n: steadyLat.length,
      p50: round1(quantileSorted(steadyLat, 0.5)),
      p99: round1(quantileSorted(steadyLat, 0.99)),
    },
    window: {
      n: windowLat.length,
      p50: round1(quantileSorted(windowLat, 0.5)),
      p99: round1(quantileSorted(windowLat, 0.99)),
      max: round1(windowLat.at(-1) ?? Number.NaN),
    },
    maxLatencyMs: round1(allLat.length ? allLat.reduce((a, b) => Math.max(a, b)) : Number.NaN),
    silenceMs: Math.max(0, ...restarts.map((r) => r.silenceMs)),
    silenceOverallMs: round1(silenceOverall),
    rps: Math.round((done.length * 1000) / Math.max(1, load.stoppedAt - load.startedAt)),
    steadyRps: Math.round((steadyN * 1000) / Math.max(1, t0 - steadyFrom)),
    restartRps: Math.round((busyServed * 1000) / Math.max(1, busyMs)),
    stale: restarts.reduce((a, r) => a + r.stale, 0),
    restarts,
    pidsAnswering: new Set(done.map((d) => d.pid)).size,
    errors: error ? [error] : [],
    failureSamples: failures.slice(0, 30).map((f: Failure) => ({
      t: round1(f.end - t0),
      kind: f.kind,
      client: f.client,
      ms: round1(f.end - f.start),
      detail: f.detail,
    })),
    timeline: timeline(done, t0 - 1000, load.stoppedAt),
    // at most 1000 (a run with thousands of refused connections would bloat the file)
    failuresAt: failures.slice(0, 1000).map((f) => ({ t: round1(f.end - t0), kind: f.kind })),
    ...(error ? { error } : {}),
  };
}

function timeline(done: Done[], from: number, to: number): RunResult['timeline'] {
  const binMs = 50;
  const n = Math.max(1, Math.ceil((to - from) / binMs));
  const bins: number[][] = Array.from({ length: n }, () => []);
  for (const d of done) {
    const i = Math.floor((d.start - from) / binMs);
    if (i >= 0 && i < n) bins[i]!.push(d.end - d.start);
  }
  return {
    binMs,
    from: -1000,
    max: bins.map((b) => round1(b.reduce((x, y) => Math.max(x, y), 0))),
    p50: bins.map((b) =>
      round1(
        b.length
          ? quantileSorted(
              b.sort((x, y) => x - y),
              0.5,
            )
          : 0,
      ),
    ),
    count: bins.map((b) => b.length),
  };
}

function lowerBound(sorted: number[], x: number): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (sorted[mid]! < x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** +12.0 ms, −8.00 ms: a difference, signed either way. */
const signedMs = (n: number): string =>
  Number.isFinite(n) ? `${n < 0 ? '−' : '+'}${fmtMs(Math.abs(n))}` : '—';

const versionNumber = (v: string): number => Number(v.replace(/^v/, '')) || 0;

const round1 = (x: number): number => (Number.isFinite(x) ? Math.round(x * 10) / 10 : Number.NaN);

/** Which app an outside-manager boot is measured for: the Node app, or its Rack twin under Puma. */
type BootKind = 'node' | 'rack' | 'node-single';

/**
 * The app's own boot, outside any manager: spawn → first 2xx, `n` times. The Node app: `node serve.mjs`
 * (plain http.createServer). The Rack app: `puma config.ru` in single mode (no workers, no master).
 */
async function measureBoot(kind: 'node' | 'rack', bootMs: number, n: number): Promise<number[]> {
  const root = tmpDir('nserve-bench-boot-');
  const dir = writeRelease(root, 'v1', { bootMs, requestMs: 2 });
  fs.copyFileSync(RACK_APP, path.join(dir, 'config.ru'));
  const out: number[] = [];
  try {
    for (let i = 0; i < n; i++) {
      const port = await freePort();
      const t = now();
      const proc =
        kind === 'node'
          ? startNode(path.join(FIXTURES, 'serve.mjs'), [], {
              PORT: String(port),
              BENCH_APP: path.join(dir, 'app.mjs'),
            })
          : startProcess('puma', ['-b', `tcp://127.0.0.1:${port}`, path.join(dir, 'config.ru')], {
              env: { BENCH_BOOT_MS: String(bootMs), BENCH_REQUEST_MS: '2' },
              cwd: dir,
            });
      try {
        await until('boot', async () => (await getJson(port, '/', 1000)).status === 200, 30000, 5);
        out.push(Math.round(now() - t));
      } finally {
        await proc.stop('SIGKILL', 0);
      }
    }
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
  return out;
}

const bootKindOf = (sys: SystemDef, singleDiffers: boolean): BootKind =>
  sys.rack === true ? 'rack' : sys.single === true && singleDiffers ? 'node-single' : 'node';

const BOOT_LABELS: Record<BootKind, string> = {
  node: 'Node app (node serve.mjs)',
  rack: 'Rack app (puma config.ru, single mode)',
  'node-single': 'Node app, single-mode boot (node serve.mjs)',
};

// ── the suite ──────────────────────────────────────────────────────────────────────────────────────────

export async function restartSuite(opts: RestartOptions): Promise<void> {
  const m: Machine = machine();
  const systems = opts.systems.map((name) => {
    const s = RESTART_SYSTEMS.find((x) => x.name === name);
    if (!s)
      throw new Error(`unknown system ${name}; known: ${RESTART_SYSTEMS.map((x) => x.name).join(', ')}`);
    return s;
  });
  const started = Date.now();
  const rack = systems.filter((s) => s.rack === true);
  if (rack.length > 0) m.puma = requirePuma(rack.map((s) => s.name));
  console.log(
    `restart suite: ${systems.length} systems × ${opts.rounds} rounds, ${opts.restarts} restarts per run, app boot ${opts.bootMs} ms`,
  );
  console.log(describeLoad('at start'));
  // The reference for "new code": each app's own boot outside any manager, measured in every round
  // (beside the systems, on the machine as it is then), for every app a system runs.
  const singleDiffers = opts.singleBootMs !== opts.bootMs;
  const kinds = [...new Set(systems.map((s) => bootKindOf(s, singleDiffers)))];
  const outside: Record<BootKind, number[]> = { node: [], rack: [], 'node-single': [] };
  const measureOutside = async (round: number): Promise<void> => {
    for (const kind of kinds) {
      const ms = await measureBoot(
        kind === 'rack' ? 'rack' : 'node',
        kind === 'node-single' ? opts.singleBootMs : opts.bootMs,
        2,
      );
      outside[kind].push(...ms);
      console.log(
        `  round ${round} outside any manager, ${BOOT_LABELS[kind]}: spawn → first response ${ms.join(', ')} ms`,
      );
    }
  };
  const runs: RunResult[] = [];
  for (let round = 1; round <= opts.rounds; round++) {
    console.log(`  ${describeLoad(`before round ${round}`)}`);
    await measureOutside(round);
    // Interleaved: every system once per round, the order rotated each round.
    const order = systems.map((_, i) => systems[(i + round - 1) % systems.length]!);
    for (const sys of order) {
      const t = Date.now();
      let run: RunResult;
      try {
        run = await runOne(sys, round, opts);
      } catch (err) {
        const message = (err as Error).message;
        console.log(`  round ${round} ${sys.name}: FAILED to run: ${message.split('\n')[0]}`);
        run = emptyRun(sys.name, round, message);
      }
      runs.push(run);
      console.log(
        `  round ${round} ${sys.name.padEnd(18)} ok=${run.ok} failed=${run.failed}${run.failed ? ` ${JSON.stringify(run.byKind)}` : ''} silence=${fmtMs(run.silenceMs)} stale=${run.stale} new code after ${run.restarts.map((r) => fmtMs(r.firstNewMs)).join(', ')} (${((Date.now() - t) / 1000).toFixed(1)} s)`,
      );
    }
  }
  await pm2.killPm2();
  m.loadavgAtEnd = (await import('node:os')).loadavg().map((x) => Number(x.toFixed(2)));
  const outsideMedian = (sys: SystemDef): number => median(outside[bootKindOf(sys, singleDiffers)]);
  const boot = outside.node;
  const singleBoot = singleDiffers && outside['node-single'].length > 0 ? outside['node-single'] : undefined;
  const rackBoot = outside.rack.length > 0 ? outside.rack : undefined;

  const summary = systems.map((sys) =>
    summarize(
      sys,
      runs.filter((r) => r.system === sys.name),
      outsideMedian(sys),
    ),
  );
  const header = [
    'system',
    'req/s steady',
    'while restarting',
    'failed per run',
    'failed by kind',
    'steady p99',
    'restart p99',
    '×steady',
    'restart max',
    'silence',
    'new code after',
    'new code − outside boot',
    'restart took',
    'spawn → accepting − outside boot',
    'stale',
  ];
  const rows = summary.map((s) => s.row);
  console.log(
    `\nRestart under load: ${opts.restarts} restarts per run, ${opts.rounds} runs per system (median (min–max) over runs);`,
  );
  console.log(
    `app boot ${opts.bootMs} ms configured; outside any manager (spawn → first response, median over the rounds): ${kinds.map((k) => `${BOOT_LABELS[k]} ${fmtMs(median(outside[k]))}`).join(', ')}`,
  );
  console.log(`${describeLoad('at end')} (at start: ${m.loadavgAtStart.join(' ')})\n`);
  console.log(table(header, rows));
  console.log(
    '\nrestart p50/p99/max: latency of requests overlapping a restart window (signal → done, new code answering, old code silent).',
  );
  console.log(
    "silence: longest time with no response at all, per run the worst restart. new code after: signal → first response from the new release; − outside boot: minus the median of the same app's own boot outside any manager (spawn → first response) in this run.",
  );
  console.log(
    'req/s while restarting: responses per second from the signal until the restart is done and the new code answers (ratio to steady).',
  );
  console.log(
    'stale: requests started after the restart was reported done but answered by the old code (per run).',
  );
  console.log(
    "spawn → accepting − outside boot: nserve phased restarts, each replacement from its spawn to accepting on its slots (the master's log), minus the app's own boot outside any manager.",
  );
  const out = opts.out;
  const svgFile = `${out.replace(/\.json$/, '')}.svg`;
  const result = {
    suite: 'restart',
    command: commandLine(),
    machine: m,
    options: opts,
    load: {
      keepAliveGet: 6,
      newConnectionGet: 3,
      newConnectionPost16k: 2,
      postBytes: 16256,
      timeoutMs: opts.timeoutMs,
    },
    appBootMs: boot,
    ...(singleBoot ? { singleAppBootMs: singleBoot } : {}),
    ...(rackBoot ? { rackAppBootMs: rackBoot } : {}),
    elapsedS: Math.round((Date.now() - started) / 1000),
    systems: systems.map((s) => ({ name: s.name, label: s.label, how: s.how })),
    summary: summary.map((s) => s.data),
    markdown: markdownTable(header, rows),
    runs,
  };
  writeResult(out, result);
  const firstRuns = systems
    .map((s) => runs.find((r) => r.system === s.name && !r.error) ?? runs.find((r) => r.system === s.name))
    .filter((r): r is RunResult => r !== undefined);
  writeText(
    svgFile,
    restartChart(
      firstRuns.map((r) => ({ label: systems.find((s) => s.name === r.system)!.label, run: r })),
      `Restart under load: latency by request start time (max and median per 50 ms), app boot ${opts.bootMs} ms`,
    ),
  );
  formatForRepo([out]);
  console.log(
    `\nresults: ${path.relative(process.cwd(), out)}\nchart:   ${path.relative(process.cwd(), svgFile)}`,
  );
}

function emptyRun(system: string, round: number, error: string): RunResult {
  return {
    system,
    round,
    bootMs: Number.NaN,
    ok: 0,
    failed: 0,
    byKind: {},
    failedOutsideWindows: 0,
    durationMs: 0,
    steady: { n: 0, p50: Number.NaN, p99: Number.NaN },
    window: { n: 0, p50: Number.NaN, p99: Number.NaN, max: Number.NaN },
    maxLatencyMs: Number.NaN,
    silenceMs: Number.NaN,
    silenceOverallMs: Number.NaN,
    rps: Number.NaN,
    steadyRps: Number.NaN,
    restartRps: Number.NaN,
    stale: 0,
    restarts: [],
    pidsAnswering: 0,
    errors: [error],
    failureSamples: [],
    timeline: { binMs: 50, from: -1000, max: [], p50: [], count: [] },
    failuresAt: [],
    error,
  };
}

function summarize(
  sys: SystemDef,
  runs: RunResult[],
  outsideBootMs: number,
): { row: string[]; data: Record<string, unknown> } {
  const good = runs.filter((r) => !r.error);
  const kinds: Record<string, number> = {};
  for (const r of runs) for (const [k, v] of Object.entries(r.byKind)) kinds[k] = (kinds[k] ?? 0) + v;
  const allRestarts = runs.flatMap((r) => r.restarts);
  const steadyP99 = spread(runs.map((r) => r.steady.p99));
  const windowP99 = spread(runs.map((r) => r.window.p99));
  const ratio = spread(runs.map((r) => r.window.p99 / r.steady.p99));
  const silence = spread(runs.map((r) => r.silenceMs));
  const firstNew = spread(allRestarts.map((r) => r.firstNewMs));
  // signal → new code, minus the same app's own boot outside any manager, measured in this run.
  const overBoot = spread(runs.flatMap((r) => r.restarts.map((x) => x.firstNewMs - outsideBootMs)));
  const took = spread(allRestarts.map((r) => r.doneMs));
  // Each replacement's spawn → accepting, minus the app's own boot outside any manager (NaN: not reported).
  const replacements = allRestarts.flatMap((r) => r.replacementsMs ?? []);
  const spawnToAccept = spread(replacements);
  const acceptOverBoot = spread(
    runs.flatMap((r) => r.restarts.flatMap((x) => (x.replacementsMs ?? []).map((ms) => ms - outsideBootMs))),
  );
  const steadyRps = median(runs.map((r) => r.steadyRps));
  const restartRps = median(runs.map((r) => r.restartRps));
  const data = {
    system: sys.name,
    label: sys.label,
    how: sys.how,
    runs: runs.length,
    runsWithErrors: runs.length - good.length,
    errors: runs.flatMap((r) => r.errors),
    requests: spread(runs.map((r) => r.ok)),
    rps: spread(runs.map((r) => r.rps)),
    steadyRps: spread(runs.map((r) => r.steadyRps)),
    restartRps: spread(runs.map((r) => r.restartRps)),
    staleAnswers: runs.map((r) => r.stale),
    failedPerRun: runs.map((r) => r.failed),
    failedByKind: kinds,
    failedOutsideWindows: runs.reduce((a, r) => a + r.failedOutsideWindows, 0),
    steadyP50: spread(runs.map((r) => r.steady.p50)),
    steadyP99,
    windowP50: spread(runs.map((r) => r.window.p50)),
    windowP99,
    windowP99VsSteady: ratio,
    windowMax: spread(runs.map((r) => r.window.max)),
    silenceMs: silence,
    firstNewMs: firstNew,
    bootMs: median(runs.map((r) => r.bootMs)),
    outsideBootMs,
    firstNewOverOutsideBootMs: overBoot,
    lastOldMs: spread(allRestarts.map((r) => r.lastOldMs)),
    restartTookMs: took,
    spawnToAcceptMs: spawnToAccept,
    spawnToAcceptOverBootMs: acceptOverBoot,
  };
  const kindText =
    Object.entries(kinds)
      .map(([k, v]) => `${k} ${v}`)
      .join(', ') || '—';
  const row = [
    sys.label + (runs.length > good.length ? ' (!)' : ''),
    fmtNum(steadyRps),
    `${fmtNum(restartRps)} (${(restartRps / steadyRps).toFixed(2)})`,
    runs.map((r) => (r.error ? `${r.failed}!` : String(r.failed))).join(' / '),
    kindText,
    fmtMs(steadyP99.median),
    fmtSpread(windowP99, fmtMs),
    Number.isFinite(ratio.median) ? `${ratio.median.toFixed(1)}×` : '—',
    fmtMs(Math.max(...runs.map((r) => r.window.max).filter(Number.isFinite))),
    fmtSpread(silence, fmtMs),
    fmtSpread(firstNew, fmtMs),
    fmtSpread(overBoot, signedMs),
    fmtSpread(took, fmtMs),
    replacements.length === 0 ? '—' : fmtSpread(acceptOverBoot, signedMs),
    runs.map((r) => String(r.stale)).join(' / '),
  ];
  return { row, data };
}
