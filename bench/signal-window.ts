// Suite `signal-window`: after a hot restart's exec, how long does a SIGTERM or SIGINT still end the
// server by its default, fatal, action instead of a graceful stop, per Node line? And are the restart
// signals (USR2, HUP) really never fatal in that window?
//
// The new image is started with nserve_signals.so preloaded (native/early_signals.cc): its constructor
// installs recording handlers for USR1, USR2, HUP, TTIN and TTOU before Node runs, and those signals are
// blocked across execve (src/restart/exec.ts). SIGTERM and SIGINT are not covered: they are at their
// default action from the execve until Node's start-up installs its own handlers (which re-raise with the
// default action), and those stay until bin/nserve.js installs JS handlers. That window is what this
// suite measures, from outside, the way an operator would hit it.
//
// One trial: `node bin/nserve.js start hello.mjs --bind tcp://127.0.0.1:PORT --pidfile F [-w 2]` with the
// node binary under test (JSON logs on stdout), wait for the event `server.booted`, SIGUSR2, wait for
// `restart.hot.exec` (logged by the single-mode server or the master, right before its execve), sleep the
// delay, send the signal to the server's PID, and classify:
//   graceful  exit code 0 after a `server.stopped` line (TERM, INT; HUP without redirected stdio or ssl://
//             binds is a graceful stop too once nserve's handlers run)
//   fatal     ended by the signal itself, no `server.stopped` line
//   survived  still alive once the restart is done, and answering (USR2, HUP; a TERM/INT that survives was
//             lost: it reached the old image just before its execve)
//   other     anything else (exit status, no answer, a timeout), with the detail
// Every process a trial starts is in its own process group and killed by group when the trial ends.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { procEntry } from '../src/os/proc.js';
import { commandLine, formatForRepo, machine, writeResult } from './lib/machine.js';
import {
  childPids,
  FIXTURES,
  freePort,
  getJson,
  isEvent,
  killGroup,
  type LogLine,
  NSERVE_CLI,
  now,
  type Proc,
  sleep,
  start,
  tmpDir,
  untrackGroup,
} from './lib/proc.js';
import { markdownTable, median, table } from './lib/stats.js';

export type SignalWindowMode = 'single' | 'cluster';
export const SIGNAL_WINDOW_MODES: readonly SignalWindowMode[] = ['single', 'cluster'];
export const DEFAULT_WINDOW_SIGNALS: readonly NodeJS.Signals[] = ['SIGTERM', 'SIGINT', 'SIGUSR2', 'SIGHUP'];
/** 0 to 150 ms after the exec line, in 10 ms steps. */
export const DEFAULT_WINDOW_DELAYS: readonly number[] = Array.from({ length: 16 }, (_, i) => i * 10);

export interface SignalWindowOptions {
  /** Paths of node binaries. */
  nodes: string[];
  signals: NodeJS.Signals[];
  /** Milliseconds after the `restart.hot.exec` line was read. */
  delays: number[];
  modes: SignalWindowMode[];
  rounds: number;
  out: string;
}

type Outcome = 'graceful' | 'fatal' | 'survived' | 'other';

interface Trial {
  node: string;
  mode: SignalWindowMode;
  signal: NodeJS.Signals;
  delayMs: number;
  round: number;
  outcome: Outcome;
  /** Exit status, a failed request or an error, for `other`. */
  detail?: string;
  /** From reading the exec line to the kill(): the delay as it really was. */
  actualDelayMs: number;
  /** From reading the exec line to the first line of the new image (Node's start-up plus module loading). */
  firstLineMs?: number;
  /** What the new image logged as `signals received while booting were ignored`. */
  recorded?: string[];
  /** A `server.stopped` line after the exec. */
  stopped: boolean;
  /** The pidfile still existed once the outcome was known. */
  pidfileLeft: boolean;
  /** Cluster mode, fatal: workers (old and new) alive when the master died, how many logged `master is gone`, how long until none was left. */
  workers?: { count: number; masterGoneLines: number; allGoneMs: number | null };
}

const APPS = path.join(FIXTURES, 'apps');
const STOP_WAIT_MS = 15_000;
/** Once the restart is done, a signal that was going to stop the server has had this long to show it. */
const SETTLE_MS = 400;

const short = (sig: string): string => sig.replace(/^SIG/, '');
const isStop = (sig: NodeJS.Signals): boolean => sig === 'SIGTERM' || sig === 'SIGINT';

function nodeVersion(node: string): string {
  try {
    return execFileSync(node, ['-v'], { encoding: 'utf8' }).trim();
  } catch (err) {
    throw new Error(`--nodes: cannot run ${node}: ${(err as Error).message.split('\n')[0]}`);
  }
}

/** Live (not zombie) PIDs among `pids`. */
const alive = (pids: readonly number[]): number[] =>
  pids.filter((p) => {
    const e = procEntry(p);
    return e !== undefined && e.state !== 'Z' && e.state !== 'X';
  });

async function waitGone(pids: readonly number[], deadlineMs: number): Promise<number | null> {
  const t0 = now();
  while (alive(pids).length > 0) {
    if (now() - t0 > deadlineMs) return null;
    await sleep(10);
  }
  return Math.round(now() - t0);
}

async function trial(
  node: string,
  mode: SignalWindowMode,
  signal: NodeJS.Signals,
  delayMs: number,
  round: number,
  dir: string,
): Promise<Trial> {
  const port = await freePort();
  const pidfile = path.join(dir, `nserve-${port}.pid`);
  const args = [
    NSERVE_CLI,
    'start',
    'hello.mjs',
    '--directory',
    APPS,
    '--bind',
    `tcp://127.0.0.1:${port}`,
    '--pidfile',
    pidfile,
    ...(mode === 'cluster' ? ['-w', '2'] : []),
  ];
  const base = { node, mode, signal, delayMs, round };
  let proc: Proc | undefined;
  let workerPids: number[] = [];
  try {
    const p = start(node, args);
    proc = p;
    await p.waitForEvent('server.booted', 30_000);
    const from = p.lines.length;
    p.signal('SIGUSR2');
    const execLine = await p.waitForEvent('restart.hot.exec', 30_000, from);
    const execAt = p.receivedAt(execLine);
    const execIndex = p.lines.indexOf(execLine);
    if (mode === 'cluster') workerPids = childPids(p.pid);
    if (delayMs > 0) await sleep(delayMs);
    const sentAt = now();
    p.signal(signal);
    const actualDelayMs = Math.round((sentAt - execAt) * 10) / 10;

    const after = (): typeof p.lines => p.lines.slice(execIndex + 1);
    const settled = (async (): Promise<undefined> => {
      await p.waitForEvent('restart.hot.done', STOP_WAIT_MS, execIndex + 1).catch(() => undefined);
      await sleep(SETTLE_MS);
      return undefined;
    })();
    let status = await Promise.race([p.exited, settled]);
    // A stop under way (it began after the restart was done, or drains workers): let it finish.
    const stopping = (l: LogLine): boolean =>
      isEvent(l, 'stop.delay.started', 'stop.draining') ||
      (isEvent(l, 'state.changed') && l.to === 'stopping');
    if (status === undefined && after().some(stopping))
      status = await p.waitExit(STOP_WAIT_MS).catch(() => undefined);

    const self = p.pid;
    const firstNew = after().find((l) => l.pid === self);
    const firstLineMs = firstNew === undefined ? undefined : Math.round(p.receivedAt(firstNew) - execAt);
    const ignoredLine = after().find((l) => isEvent(l, 'signal.booting.ignored'));
    const recorded = Array.isArray(ignoredLine?.signals) ? ignoredLine.signals.map(String) : undefined;
    const stopped = after().some((l) => isEvent(l, 'server.stopped') && l.pid === self);
    const facts = {
      ...base,
      actualDelayMs,
      ...(firstLineMs === undefined ? {} : { firstLineMs }),
      ...(recorded === undefined ? {} : { recorded }),
      stopped,
    };

    if (status === undefined) {
      const reply = await getJson(port, '/', 3000).catch((err: unknown) => (err as Error).message);
      const ok = typeof reply !== 'string' && reply.status === 200;
      return {
        ...facts,
        outcome: ok ? 'survived' : 'other',
        ...(ok ? {} : { detail: `alive, no answer: ${typeof reply === 'string' ? reply : reply.status}` }),
        pidfileLeft: fs.existsSync(pidfile),
      };
    }
    if (status.code === 0 && stopped)
      return { ...facts, outcome: 'graceful', pidfileLeft: fs.existsSync(pidfile) };
    if (status.signal === signal && !stopped) {
      const workers =
        mode === 'cluster'
          ? {
              count: workerPids.length,
              allGoneMs: await waitGone(workerPids, 5000),
              masterGoneLines: after().filter((l) => isEvent(l, 'worker.master-gone')).length,
            }
          : undefined;
      return {
        ...facts,
        outcome: 'fatal',
        pidfileLeft: fs.existsSync(pidfile),
        ...(workers === undefined ? {} : { workers }),
      };
    }
    return {
      ...facts,
      outcome: 'other',
      detail: `exit ${status.signal ?? `code ${status.code}`}${stopped ? ' after stopped' : ''}`,
      pidfileLeft: fs.existsSync(pidfile),
    };
  } catch (err) {
    return {
      ...base,
      outcome: 'other',
      detail: `error: ${(err as Error).message.split('\n')[0]}`,
      actualDelayMs: Number.NaN,
      stopped: false,
      pidfileLeft: fs.existsSync(pidfile),
    };
  } finally {
    if (proc !== undefined) {
      killGroup(proc.pid);
      untrackGroup(proc.pid);
      // Workers outlive a master killed by signal for up to a second: never leave one behind.
      for (const pid of alive(workerPids)) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // gone
        }
      }
      await Promise.race([proc.exited, sleep(2000)]);
    }
  }
}

interface Window {
  node: string;
  version: string;
  mode: SignalWindowMode;
  signal: NodeJS.Signals;
  trials: number;
  fatal: number;
  /** The largest delay step with a fatal outcome (null: none). */
  lastFatalDelayMs: number | null;
  /** The smallest delay step from which every trial, at that step and every later one, was non-fatal (graceful, or survived for a restart signal). */
  safeFromDelayMs: number | null;
  /** The same in measured ms after the exec line: the latest fatal, the earliest graceful. */
  latestFatalMs: number | null;
  earliestGracefulMs: number | null;
  counts: Record<Outcome, number>;
}

function windowOf(trials: readonly Trial[], delays: readonly number[]): Omit<Window, 'node' | 'version'> {
  const t0 = trials[0]!;
  const fatalDelays = trials.filter((t) => t.outcome === 'fatal').map((t) => t.delayMs);
  const clean = (t: Trial): boolean =>
    isStop(t.signal) ? t.outcome === 'graceful' : t.outcome === 'graceful' || t.outcome === 'survived';
  const sorted = [...delays].sort((a, b) => a - b);
  let safeFrom: number | null = null;
  for (let i = sorted.length - 1; i >= 0; i--) {
    const at = trials.filter((t) => t.delayMs === sorted[i]);
    if (at.length === 0 || !at.every(clean)) break;
    safeFrom = sorted[i]!;
  }
  const actual = (o: Outcome): number[] =>
    trials.filter((t) => t.outcome === o && Number.isFinite(t.actualDelayMs)).map((t) => t.actualDelayMs);
  const counts: Record<Outcome, number> = { graceful: 0, fatal: 0, survived: 0, other: 0 };
  for (const t of trials) counts[t.outcome]++;
  return {
    mode: t0.mode,
    signal: t0.signal,
    trials: trials.length,
    fatal: counts.fatal,
    lastFatalDelayMs: fatalDelays.length === 0 ? null : Math.max(...fatalDelays),
    safeFromDelayMs: safeFrom,
    latestFatalMs: actual('fatal').length === 0 ? null : Math.max(...actual('fatal')),
    earliestGracefulMs: actual('graceful').length === 0 ? null : Math.min(...actual('graceful')),
    counts,
  };
}

/** "fatal/trials", with what was neither fatal nor the expected outcome named after it. */
function cell(trials: readonly Trial[]): string {
  if (trials.length === 0) return '—';
  const fatal = trials.filter((t) => t.outcome === 'fatal').length;
  const notes: string[] = [];
  const other = trials.filter((t) => t.outcome === 'other').length;
  // A TERM/INT that survived was lost (sent before the execve), worth seeing.
  const lost = trials.filter((t) => isStop(t.signal) && t.outcome === 'survived').length;
  if (lost > 0) notes.push(`${lost} lost`);
  if (other > 0) notes.push(`${other} other`);
  return `${fatal}/${trials.length}${notes.length > 0 ? ` (${notes.join(', ')})` : ''}`;
}

const fmtDelay = (ms: number | null): string => (ms === null ? '—' : `${ms} ms`);

export async function signalWindowSuite(opts: SignalWindowOptions): Promise<void> {
  const m = machine();
  const started = Date.now();
  const nodes = opts.nodes.map((node) => ({ node, version: nodeVersion(node) }));
  const versionOf = new Map(nodes.map((n) => [n.node, n.version]));
  const combos = nodes.length * opts.modes.length * opts.signals.length * opts.delays.length;
  console.log(
    `signal-window suite: ${nodes.map((n) => n.version).join(', ')} × ${opts.modes.join(', ')} × ${opts.signals.map(short).join(', ')} × ${opts.delays.length} delays (${opts.delays.join(', ')} ms) × ${opts.rounds} rounds = ${combos * opts.rounds} trials; load average ${os
      .loadavg()
      .map((x) => x.toFixed(2))
      .join(' ')}`,
  );
  const dir = tmpDir('nserve-bench-signals-');
  const trials: Trial[] = [];
  for (let round = 1; round <= opts.rounds; round++) {
    for (const { node, version } of nodes) {
      for (const mode of opts.modes) {
        const line: string[] = [];
        for (const delayMs of opts.delays) {
          for (const signal of opts.signals) {
            const t = await trial(node, mode, signal, delayMs, round, dir);
            trials.push(t);
            if (t.outcome === 'fatal') line.push(`${short(signal)}@${delayMs}`);
            if (t.outcome === 'other') line.push(`${short(signal)}@${delayMs}:${t.detail ?? 'other'}`);
          }
        }
        console.log(
          `  round ${round} ${version} ${mode.padEnd(7)} fatal/other: ${line.length === 0 ? 'none' : line.join(' ')}`,
        );
      }
    }
  }

  const windows: Window[] = [];
  const markdown: Record<string, string> = {};
  for (const { node, version } of nodes) {
    const mine = trials.filter((t) => t.node === node);
    const columns = opts.modes.flatMap((mode) => opts.signals.map((signal) => ({ mode, signal })));
    const header = [
      'delay after exec line',
      ...columns.map((c) => `${short(c.signal)} ${c.mode === 'single' ? 'single' : '-w 2'}`),
    ];
    const rows = opts.delays.map((d) => [
      `${d} ms`,
      ...columns.map((c) =>
        cell(mine.filter((t) => t.mode === c.mode && t.signal === c.signal && t.delayMs === d)),
      ),
    ]);
    const firstLine = median(mine.map((t) => t.firstLineMs ?? Number.NaN).filter(Number.isFinite));
    console.log(
      `\n${version} (${node}): fatal outcomes / trials; exec line → first line of the new image, median ${Math.round(firstLine)} ms\n`,
    );
    console.log(table(header, rows));
    markdown[version] = markdownTable(header, rows);
    for (const c of columns) {
      const these = mine.filter((t) => t.mode === c.mode && t.signal === c.signal);
      if (these.length > 0) windows.push({ node, version, ...windowOf(these, opts.delays) });
    }
  }

  const wHeader = [
    'node',
    'mode',
    'signal',
    'fatal',
    'last fatal step',
    'non-fatal from step',
    'latest fatal (measured)',
    'earliest graceful (measured)',
  ];
  const wRows = windows.map((w) => [
    w.version,
    w.mode,
    short(w.signal),
    `${w.fatal}/${w.trials}`,
    fmtDelay(w.lastFatalDelayMs),
    fmtDelay(w.safeFromDelayMs),
    w.latestFatalMs === null ? '—' : `${w.latestFatalMs.toFixed(1)} ms`,
    w.earliestGracefulMs === null ? '—' : `${w.earliestGracefulMs.toFixed(1)} ms`,
  ]);
  console.log('\nThe window (delays are after the `restart.hot.exec` line was read):\n');
  console.log(table(wHeader, wRows));
  const bad = windows.filter((w) => !isStop(w.signal) && w.fatal > 0);
  console.log(
    bad.length === 0
      ? '\nrestart signals (USR2, HUP): never fatal'
      : `\nrestart signals FATAL in: ${bad.map((w) => `${w.version} ${w.mode} ${short(w.signal)} ${w.fatal}/${w.trials}`).join(', ')}`,
  );
  const clusterFatal = trials.filter((t) => t.workers !== undefined);
  if (clusterFatal.length > 0) {
    const gone = clusterFatal.map((t) => t.workers!.allGoneMs ?? Number.NaN);
    console.log(
      `cluster mode, after the master died: workers all gone in ${Math.round(median(gone))} ms median (max ${Math.max(...gone.filter(Number.isFinite))} ms; ${gone.filter((g) => !Number.isFinite(g)).length} never); pidfile left behind in ${clusterFatal.filter((t) => t.pidfileLeft).length}/${clusterFatal.length}`,
    );
  }

  m.loadavgAtEnd = os.loadavg().map((x) => Number(x.toFixed(2)));
  writeResult(opts.out, {
    suite: 'signal-window',
    command: commandLine(),
    machine: m,
    options: opts,
    nodes,
    elapsedS: Math.round((Date.now() - started) / 1000),
    summary: {
      windows,
      restartSignalsNeverFatal: bad.length === 0,
      firstLineMs: Object.fromEntries(
        nodes.map((n) => [
          n.version,
          median(
            trials
              .filter((t) => t.node === n.node)
              .map((t) => t.firstLineMs ?? Number.NaN)
              .filter(Number.isFinite),
          ),
        ]),
      ),
    },
    markdown: { perNode: markdown, windows: markdownTable(wHeader, wRows) },
    trials: trials.map((t) => ({ ...t, node: versionOf.get(t.node) ?? t.node })),
  });
  formatForRepo([opts.out]);
  console.log(`\nresults: ${path.relative(process.cwd(), opts.out)}`);
}
