// `nserve top`'s screen: the view model (view.ts) as lines of text that fit the terminal's width (80
// columns at least stay readable: every line is cut to the width, the widest table is 78 columns).
import type { DashboardView, RestartBar } from './view.js';

export interface TopStatus {
  /** live: the last poll answered; restarting: the control server is away (an exec), still trying. */
  state: 'live' | 'restarting' | 'unreachable';
  /** Where top looks (the control URL). */
  url: string;
  detail?: string;
}

function mb(bytes: number | null | undefined): string {
  if (bytes === null || bytes === undefined) return '-';
  const m = bytes / 1048576;
  return m < 10 ? `${m.toFixed(1)}M` : `${Math.round(m)}M`;
}

function dur(ms: number | null): string {
  if (ms === null) return '-';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  if (ms < 3_600_000) return `${Math.floor(ms / 60_000)} min ${Math.floor((ms % 60_000) / 1000)} s`;
  return `${Math.floor(ms / 3_600_000)} h ${Math.floor((ms % 3_600_000) / 60_000)} min`;
}

function rate(n: number | null): string {
  return n === null ? '-' : n.toFixed(n < 100 ? 1 : 0);
}

function cut(line: string, width: number): string {
  return line.length <= width ? line : `${line.slice(0, Math.max(0, width - 1))}…`;
}

const BLOCKS = ' ▁▂▃▄▅▆▇█';

/** A one-line chart of `values` (the newest last), `width` characters. */
export function sparkline(values: readonly number[], width: number): string {
  const shown = values.slice(-width);
  const max = Math.max(0, ...shown);
  return shown
    .map((v) => (max === 0 ? BLOCKS[1] : BLOCKS[Math.min(8, Math.max(1, Math.round((v / max) * 8)))]))
    .join('');
}

function timeOf(ms: number): string {
  return new Date(ms).toISOString().slice(11, 19);
}

function restartLine(r: RestartBar): string {
  const took = r.end === null ? 'running' : dur(r.end - r.start);
  const pause = r.pauseMs === null ? '' : `  pause ${dur(r.pauseMs)}`;
  const release = r.release === null ? '' : `  → ${r.release}`;
  const extra = r.canary !== null ? `  canary: ${r.canary}` : r.error !== null ? `  ${r.error}` : '';
  const kind = `${r.kind}${r.rollback ? ' rollback' : ''}`;
  return ` #${String(r.id).padEnd(3)} ${timeOf(r.start)}  ${kind.padEnd(8)} ${r.outcome.padEnd(11)} ${took}${pause}${release}${extra}`;
}

const WORKER_HEAD = '  #     PID  GEN  RELEASE      STATE          RSS    REQ/S  INFL  LONG  LOOP';

/** The screen for `view` (undefined: nothing received yet), `width` columns wide. */
export function renderTop(view: DashboardView | undefined, status: TopStatus, width = 80): string[] {
  const w = Math.max(40, width);
  const out: string[] = [];
  const badge =
    status.state === 'live' ? '[live]' : status.state === 'restarting' ? '[restarting…]' : '[unreachable]';
  if (view === undefined) {
    out.push(`nserve top  ${status.url}  ${badge}`);
    if (status.detail !== undefined) out.push(status.detail);
    out.push('', 'q or Ctrl-C quits');
    return out.map((l) => cut(l, w));
  }
  const s = view.server;
  // The badge first: a narrow terminal cuts the end of a line, never whether the server answers.
  out.push(
    `${badge} nserve ${s.version} · pid ${s.pid} · ${s.mode} · ${s.state} · gen ${s.generation} · ${s.release ?? '-'} · up ${dur(s.uptimeMs)}`,
  );
  if (status.state !== 'live' && status.detail !== undefined) out.push(`  ${status.detail}`);
  out.push(
    `req/s ${rate(view.totals.rps)} · in flight ${view.totals.inFlight} · long-lived ${view.totals.longLived} · requests ${s.lifetimeRequests}`,
  );
  out.push(
    `restarts ${s.restarts.hot} hot, ${s.restarts.phased} phased · crashes ${s.crashes} · fds ${s.fds}`,
  );
  const { latencyMs, p99Ms } = view.totals;
  if (latencyMs !== null)
    out.push(
      `latency ${latencyMs.toFixed(1)} ms mean${p99Ms === null ? '' : ` · p99 ≤ ${p99Ms} ms`} (last second)`,
    );
  const m = view.memory;
  if (m !== null) {
    const cells = 20;
    const used = Math.min(cells, Math.round((m.workingSet / m.limit) * cells));
    out.push(
      `memory [${'#'.repeat(used)}${'.'.repeat(cells - used)}] ${mb(m.workingSet)} of ${m.limited ? 'limit' : 'host'} ${mb(m.limit)}, headroom ${mb(m.headroom)}${m.oomKills ? `, ${m.oomKills} OOM kills` : ''}${m.hotRestartFits === false ? ', hot restart would not fit' : ''}`,
    );
  }
  if (view.queues !== null && view.queues.length > 0) {
    const depth = view.queues.reduce((a, q) => a + q.depth, 0);
    const deepest = view.queues.reduce((a, q) => (q.depth > a.depth ? q : a));
    out.push(
      `accept queue ${depth} over ${view.queues.length} socket${view.queues.length === 1 ? '' : 's'} (deepest ${deepest.depth}/${deepest.limit} on ${deepest.bind} slot ${deepest.slot})`,
    );
  }
  out.push('');
  out.push(WORKER_HEAD);
  if (view.workers.length === 0)
    out.push(s.mode === 'single' ? `  single mode: pid ${s.pid} serves itself` : '  no workers');
  for (const wk of view.workers) {
    out.push(
      `${String(wk.index).padStart(3)} ${String(wk.pid).padStart(7)}  ${String(wk.generation).padStart(3)}  ${wk.release.slice(0, 12).padEnd(12)} ${wk.state.slice(0, 12).padEnd(12)} ${mb(wk.rss).padStart(6)} ${rate(wk.rps).padStart(8)} ${String(wk.inFlight).padStart(5)} ${String(wk.longLived).padStart(5)} ${wk.loopDelayMs === null ? '    -' : `${Math.round(wk.loopDelayMs)}ms`.padStart(5)}`,
    );
  }
  out.push('');
  const rps = view.series.map((p) => p.rps);
  const chartWidth = Math.max(10, w - 16);
  out.push(`req/s ${rate(Math.max(0, ...rps)).padStart(6)} max ${sparkline(rps, chartWidth)}`);
  out.push('');
  out.push(`restarts (latest ${Math.min(view.restarts.length, 6)} of ${view.restarts.length} shown here)`);
  if (view.restarts.length === 0) out.push('  none yet');
  for (const r of view.restarts.slice(-6).reverse()) out.push(restartLine(r));
  out.push('');
  out.push(`q or Ctrl-C quits · ${status.url} · ${timeOf(view.at)}`);
  return out.map((l) => cut(l, w));
}
