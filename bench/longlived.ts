// Suite `longlived`: restarts under load with long-lived connections open (issue 15).
//
// App: test/helpers/long-lived.ts's release, an unmodified listen-compat app (its own http.Server with a
// `ws` WebSocketServer on it and a `text/event-stream` route at /events), replying JSON {version, pid, at}.
// Clients: 8 WebSocket clients (the `ws` library, a ping every 50 ms, reconnecting at once when closed) and
// 2 event-stream clients (reconnecting at once), plus the restart suite's HTTP load (6 keep-alive GET,
// 3 new-connection GET, 2 new-connection POST 16 KB), every request accounted for.
// Systems: nserve cluster hot restart (-w 2), phased restart (-w 2), both with a 1.5 s boot; single-mode
// hot restart with a 0.8 s boot.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Load, type LoadResult } from '../test/helpers/load.js';
import { makeLongLivedReleases, SseClient, WsClient } from '../test/helpers/long-lived.js';
import { restart } from '../test/helpers/restart.js';
import { commandLine, formatForRepo, machine, writeResult } from './lib/machine.js';
import {
  freePort,
  isEvent,
  NSERVE_CLI,
  now,
  type Proc,
  sleep,
  startNode,
  tmpDir,
  until,
  waitServing,
} from './lib/proc.js';
import { fmtMs, fmtSpread, markdownTable, spread, table } from './lib/stats.js';

export interface LongLivedOptions {
  rounds: number;
  restarts: number;
  /** Boot of the cluster-mode systems. */
  bootMs: number;
  /** Boot of the single-mode system. */
  singleBootMs: number;
  timeoutMs: number;
  steadyMs: number;
  gapMs: number;
  ws: number;
  sse: number;
  /** The app closes its WebSockets itself with 1012 from nserve's onDrain hook. */
  drainApi: boolean;
  systems: string[];
  out: string;
}

interface SystemDef {
  name: string;
  label: string;
  workers: number;
  signal: 'SIGUSR1' | 'SIGUSR2';
  single: boolean;
}

export const LONGLIVED_SYSTEMS: SystemDef[] = [
  { name: 'nserve-hot-w2', label: 'cluster hot, -w 2 (USR2)', workers: 2, signal: 'SIGUSR2', single: false },
  { name: 'nserve-phased-w2', label: 'phased, -w 2 (USR1)', workers: 2, signal: 'SIGUSR1', single: false },
  { name: 'nserve-hot', label: 'single hot (USR2)', workers: 0, signal: 'SIGUSR2', single: true },
];

interface RestartFigures {
  version: string;
  /** signal → the first HTTP response from the new release */
  firstNewMs: number;
  /** signal → the log line that says the restart is done */
  doneMs: number;
  /** signal → every WebSocket and event-stream client last answered by the new release */
  allLongLivedOnNewMs: number;
  /** WebSocket messages answered by older code after the new code first answered HTTP (hot restarts) */
  overlap: number;
  /** HTTP requests overlapping [signal, all clients on new code] */
  failed: number;
  maxWaitMs: number;
  error?: string;
}

export interface LongLivedRun {
  system: string;
  round: number;
  bootMs: number;
  http: { ok: number; failed: number; byKind: Record<string, number>; maxMs: number; p99: number };
  wsCloseCodes: Record<string, number>;
  wsErrors: string[];
  wsConnectErrors: number;
  sseEnds: number;
  sseErrors: string[];
  restarts: RestartFigures[];
  /** nserve's drain log lines (how many long-lived connections were asked to close, ended by nserve). */
  drainLines: string[];
  error?: string;
}

async function runOne(sys: SystemDef, round: number, opts: LongLivedOptions): Promise<LongLivedRun> {
  const bootMs = sys.single ? opts.singleBootMs : opts.bootMs;
  const root = tmpDir('nserve-bench-ll-');
  const versions = Array.from({ length: opts.restarts + 1 }, (_, i) => `v${i + 1}`);
  makeLongLivedReleases(root, versions, { bootMs, drainApi: opts.drainApi });
  const port = await freePort();
  const proc: Proc = startNode(NSERVE_CLI, [
    'start',
    'app.mjs',
    '--directory',
    path.join(root, 'current'),
    '--bind',
    `tcp://127.0.0.1:${port}`,
    ...(sys.workers > 0 ? ['-w', String(sys.workers)] : []),
  ]);
  const ws: WsClient[] = [];
  const sse: SseClient[] = [];
  let load: Load | undefined;
  const restarts: RestartFigures[] = [];
  let error: string | undefined;
  let result: LoadResult | undefined;
  let seen = {
    codes: [] as number[],
    wsErrors: [] as string[],
    wsConnectErrors: 0,
    sseEnds: 0,
    sseErrors: [] as string[],
  };
  // Server replies carry Date.now(); the load records performance.now(): one offset converts.
  const wallOffset = Date.now() - now();
  const allOn = (version: string): boolean =>
    ws.every((w) => w.last?.version === version) && sse.every((s) => s.last?.version === version);
  try {
    await proc.waitForEvent('server.booted', 30000);
    await waitServing(port);
    for (let i = 0; i < opts.ws; i++) ws.push(new WsClient(port));
    for (let i = 0; i < opts.sse; i++) sse.push(new SseClient(port));
    await until('every long-lived client on v1', () => allOn('v1'), 15000);
    load = new Load({ port, keepAlive: 6, newConnection: 3, post: 2, timeoutMs: opts.timeoutMs });
    await sleep(opts.steadyMs);
    for (const version of versions.slice(1)) {
      const old = versions[versions.indexOf(version) - 1]!;
      const signalAt = now();
      const fig: RestartFigures = {
        version,
        firstNewMs: Number.NaN,
        doneMs: Number.NaN,
        allLongLivedOnNewMs: Number.NaN,
        overlap: 0,
        failed: 0,
        maxWaitMs: Number.NaN,
      };
      restarts.push(fig);
      try {
        const outcome = await restart(proc, sys.signal === 'SIGUSR1' ? 'phased' : 'hot', {
          release: { root, version },
          deadlineMs: 60000,
        });
        fig.doneMs = proc.receivedAt(outcome.line) - signalAt;
        const first = await Promise.race([load.firstFrom(version, signalAt), sleep(40000)]);
        if (!first) throw new Error(`no HTTP response from ${version} within 40 s`);
        fig.firstNewMs = first.end - signalAt;
        await until(`every long-lived client on ${version}`, () => allOn(version), 40000);
        const allAt = now();
        fig.allLongLivedOnNewMs = allAt - signalAt;
        if (sys.signal === 'SIGUSR2') {
          const firstNewWall = first.end + wallOffset;
          fig.overlap = ws
            .flatMap((w) => w.replies)
            .filter((r) => r.version === old && r.at > firstNewWall).length;
        }
        const inWindow = load.done.filter((d) => d.end >= signalAt && d.start <= allAt);
        fig.maxWaitMs = Math.max(0, ...inWindow.map((d) => d.end - d.start));
        fig.failed = load.failures.filter((f) => f.end >= signalAt && f.start <= allAt).length;
      } catch (err) {
        fig.error = (err as Error).message.split('\n')[0]!;
        error = fig.error;
        break;
      }
      await sleep(opts.gapMs);
    }
  } catch (err) {
    error = (err as Error).message.split('\n')[0]!;
  } finally {
    // The load stops before the server does: requests refused by a stopping server are not failures.
    result = await load?.stop();
    // What the clients saw, before our own stop() ends their connections.
    seen = {
      codes: ws.flatMap((w) => w.closes),
      wsErrors: ws.flatMap((w) => w.errors),
      wsConnectErrors: ws.reduce((a, w) => a + w.connectErrors.length, 0),
      sseEnds: sse.reduce((a, s) => a + s.ends.length, 0),
      sseErrors: sse.flatMap((s) => s.errors),
    };
    for (const c of [...ws, ...sse]) c.stop();
    await proc.stop('SIGTERM', 5000);
    fs.rmSync(root, { recursive: true, force: true });
  }
  const codes: Record<string, number> = {};
  for (const c of seen.codes) codes[String(c)] = (codes[String(c)] ?? 0) + 1;
  return {
    system: sys.name,
    round,
    bootMs,
    http: {
      ok: result?.ok ?? 0,
      failed: result?.failed ?? 0,
      byKind: result?.byKind ?? {},
      maxMs: round1(result?.maxMs ?? Number.NaN),
      p99: round1(result?.p99 ?? Number.NaN),
    },
    wsCloseCodes: codes,
    wsErrors: seen.wsErrors,
    wsConnectErrors: seen.wsConnectErrors,
    sseEnds: seen.sseEnds,
    sseErrors: seen.sseErrors,
    restarts: restarts.map((r) => ({
      ...r,
      firstNewMs: round1(r.firstNewMs),
      doneMs: round1(r.doneMs),
      allLongLivedOnNewMs: round1(r.allLongLivedOnNewMs),
      maxWaitMs: round1(r.maxWaitMs),
    })),
    drainLines: proc.lines
      .filter((l) => isEvent(l, 'drain.done'))
      .map((l) => String(l.msg ?? ''))
      .slice(0, 20),
    ...(error ? { error } : {}),
  };
}

const round1 = (x: number): number => (Number.isFinite(x) ? Math.round(x * 10) / 10 : Number.NaN);

export async function longLivedSuite(opts: LongLivedOptions): Promise<void> {
  const m = machine();
  const systems = opts.systems.map((name) => {
    const s = LONGLIVED_SYSTEMS.find((x) => x.name === name);
    if (!s)
      throw new Error(`unknown system ${name}; known: ${LONGLIVED_SYSTEMS.map((x) => x.name).join(', ')}`);
    return s;
  });
  const started = Date.now();
  console.log(
    `longlived suite: ${systems.length} systems × ${opts.rounds} rounds, ${opts.restarts} restarts per run, ${opts.ws} WebSocket + ${opts.sse} event-stream clients${opts.drainApi ? ' (app uses onDrain)' : ' (unmodified app)'}, boot ${opts.bootMs} ms (single: ${opts.singleBootMs} ms)`,
  );
  const runs: LongLivedRun[] = [];
  for (let round = 1; round <= opts.rounds; round++) {
    const order = systems.map((_, i) => systems[(i + round - 1) % systems.length]!);
    for (const sys of order) {
      const t = Date.now();
      const run = await runOne(sys, round, opts);
      runs.push(run);
      console.log(
        `  round ${round} ${sys.name.padEnd(17)} http ok=${run.http.ok} failed=${run.http.failed} max=${fmtMs(run.http.maxMs)} new code after ${run.restarts.map((r) => fmtMs(r.firstNewMs)).join(', ')} ws closes ${JSON.stringify(run.wsCloseCodes)} ws errors ${run.wsErrors.length} sse ends ${run.sseEnds} sse errors ${run.sseErrors.length}${run.error ? ` ERROR ${run.error}` : ''} (${((Date.now() - t) / 1000).toFixed(1)} s)`,
      );
    }
  }
  m.loadavgAtEnd = os.loadavg().map((x) => Number(x.toFixed(2)));
  const header = [
    'restart',
    'boot',
    'HTTP failed per run',
    'longest HTTP wait',
    'signal → new code answers HTTP',
    '− boot',
    'all WS/SSE clients on new code',
    'WS close codes',
    'WS errors',
    'event-stream errors',
    'overlap',
  ];
  const rows = systems.map((sys) => {
    const rs = runs.filter((r) => r.system === sys.name);
    const all = rs.flatMap((r) => r.restarts);
    const boot = rs[0]?.bootMs ?? Number.NaN;
    const firstNew = spread(all.map((r) => r.firstNewMs));
    const codes: Record<string, number> = {};
    for (const r of rs) for (const [k, v] of Object.entries(r.wsCloseCodes)) codes[k] = (codes[k] ?? 0) + v;
    const errors = rs.reduce((a, r) => a + r.wsErrors.length, 0);
    const sseErrors = rs.reduce((a, r) => a + r.sseErrors.length, 0);
    return [
      sys.label + (rs.some((r) => r.error) ? ' (!)' : ''),
      fmtMs(boot),
      rs.map((r) => String(r.http.failed)).join(' / '),
      fmtSpread(spread(rs.map((r) => r.http.maxMs)), fmtMs),
      fmtSpread(firstNew, fmtMs),
      `+${fmtSpread(spread(all.map((r) => r.firstNewMs - boot)), fmtMs)}`,
      fmtSpread(spread(all.map((r) => r.allLongLivedOnNewMs)), fmtMs),
      Object.entries(codes)
        .map(([k, v]) => `${k} ×${v}`)
        .join(', ') || '—',
      String(errors),
      String(sseErrors),
      sys.signal === 'SIGUSR2' ? String(all.reduce((a, r) => a + r.overlap, 0)) : 'n/a',
    ];
  });
  console.log(`\nLong-lived connections through restarts (median (min–max) over ${opts.rounds} runs):\n`);
  console.log(table(header, rows));
  console.log(
    '\nlongest HTTP wait: the slowest HTTP request of the run. overlap: WebSocket messages answered by old code after new code first answered HTTP.',
  );
  const result = {
    suite: 'longlived',
    command: commandLine(),
    machine: m,
    options: opts,
    load: {
      keepAliveGet: 6,
      newConnectionGet: 3,
      newConnectionPost16k: 2,
      webSocketClients: opts.ws,
      eventStreamClients: opts.sse,
      timeoutMs: opts.timeoutMs,
    },
    elapsedS: Math.round((Date.now() - started) / 1000),
    systems: systems.map((s) => ({ name: s.name, label: s.label })),
    markdown: markdownTable(header, rows),
    runs,
  };
  writeResult(opts.out, result);
  formatForRepo([opts.out]);
  console.log(`\nresults: ${path.relative(process.cwd(), opts.out)}`);
}
