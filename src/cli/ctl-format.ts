// How `nserve ctl` prints a server's status and stats (tables for people; --json prints the raw data).

import type { Stats, WorkerView } from '../control/status.js';
import { describeRelease, type ReleaseRef } from '../deploy/release.js';
import type { MemoryView } from '../memory/index.js';
import type { RestartRecord } from '../restart/history.js';

/** The last line of `ctl restart --wait` (and rollback): what finished, how long it took, what serves. */
export function describeRestartDone(r: RestartRecord): string {
  const what = r.rollback === true ? `rollback #${r.id} (${r.kind} restart)` : `${r.kind} restart #${r.id}`;
  const release = r.release === undefined ? '' : ` · serving ${describeRelease(r.release)}`;
  return `${what}${strategyWords(r)} done in ${duration(r)}${release}`;
}

/** The strategy that ran when memory chose it (memory/fit.ts): ` (staged: …)`; nothing for a plain one. */
export function strategyWords(r: RestartRecord): string {
  if (r.strategy === 'staged')
    return ` (staged, did not fit in memory: ${r.preboot ?? '?'} new workers booted before the old ones drained)`;
  if (r.strategy === 'phased') return ' (a hot restart run as a phased one: it did not fit in memory)';
  return '';
}

export function duration(r: RestartRecord): string {
  if (r.finished === null) return 'in progress';
  return seconds(Date.parse(r.finished) - Date.parse(r.started));
}

function seconds(ms: number): string {
  if (ms < 1000) return `${ms} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  const s = Math.floor(ms / 1000);
  const d = Math.floor(s / 86400);
  const h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  return d > 0 ? `${d}d ${h}h` : h > 0 ? `${h}h ${m}m` : `${m}m ${s % 60}s`;
}

/** A release in a table cell: its version, else its directory; `-` when the record has none. */
function releaseCell(r: ReleaseRef | undefined): string {
  return r === undefined ? '-' : (r.version ?? r.directory);
}

/**
 * The release lines of status and stats: the directory that serves, its version and where a rollback
 * goes (an older server says neither), and the mixed-version alarm.
 */
function releaseLines(s: Stats, label: (name: string) => string): string[] {
  const lines = [`${label('release')}${s.directory}`];
  if (s.release !== undefined) {
    const to = s.rollbackTo == null ? 'nowhere' : `to ${describeRelease(s.rollbackTo)}`;
    lines.push(`${label('version')}${s.release?.version ?? '-'} · rollback ${to}`);
  }
  if (s.mixedVersions != null) lines.push(`${label('WARNING')}${s.mixedVersions.message}`);
  if (s.noWayBack != null) lines.push(`${label('WARNING')}${s.noWayBack.message}`);
  return lines;
}

/** Shown for a value not known yet (a worker that has not checked in). */
export const UNKNOWN = '—';

/** The first line of an error: tables keep one line per row (the whole error is in --json). */
export function oneLine(text: string | null): string {
  return (text ?? '').split('\n')[0] ?? '';
}

function lifetimeLine(s: Stats): string {
  const l = s.lifetime;
  return `restarts ${l.restarts.hot} hot, ${l.restarts.phased} phased · worker crashes ${l.workerCrashes}`;
}

/**
 * The memory line: the working set against the limit (the cgroup's, or the host's memory), the headroom,
 * and in cluster mode whether a hot restart's new workers would fit in it.
 */
export function memoryLine(m: MemoryView): string {
  const of = m.limited
    ? `${bytes(m.limit)} limit (cgroup ${m.cgroup})`
    : `${bytes(m.limit)} (host memory, no cgroup limit)`;
  const parts = [`working set ${bytes(m.workingSet)} of ${of}`, `headroom ${bytes(m.headroom)}`];
  if (m.hotRestartNeed != null)
    parts.push(
      `hot restart needs ~${bytes(m.hotRestartNeed)}: ${m.hotRestartFits === true ? 'fits' : 'does NOT fit'}`,
    );
  if (m.oomKills !== null && m.oomKills > 0) parts.push(`OOM kills ${m.oomKills}`);
  if (m.oomGroup) parts.push('memory.oom.group=1 (an OOM kill ends every process)');
  return parts.join(' · ');
}

function bytes(n: number): string {
  if (n >= 1024 ** 3) return `${(n / 1024 ** 3).toFixed(1)} GB`;
  if (n >= 1024 ** 2) return `${Math.round(n / 1024 ** 2)} MB`;
  return `${Math.round(n / 1024)} kB`;
}

/** Columns padded to their widest cell. */
export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]): string =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)].join('\n');
}

function serving(workers: readonly WorkerView[]): number {
  return workers.filter((w) => w.booted && w.state === 'booted').length;
}

export function statusSummary(s: Stats): Record<string, unknown> {
  const last = s.restarts.at(-1);
  return {
    running: true,
    version: s.version,
    mode: s.mode,
    pid: s.pid,
    state: s.state,
    phase: s.phase,
    startedAt: s.startedAt,
    workers: s.mode === 'cluster' ? { total: s.workers.length, serving: serving(s.workers) } : undefined,
    directory: s.directory,
    release: s.release ?? null,
    rollbackTo: s.rollbackTo ?? null,
    mixedVersions: s.mixedVersions ?? null,
    noWayBack: s.noWayBack ?? null,
    requests: s.requests,
    inFlight: s.inFlight,
    lifetime: s.lifetime,
    memory: s.memory ?? null,
    lastRestart: last ?? null,
  };
}

export function formatStatus(s: Stats, now = Date.now()): string {
  const lines = [
    `${s.state} · nserve ${s.version} · ${s.mode} · pid ${s.pid} · phase ${s.phase} · up ${seconds(now - Date.parse(s.startedAt))}`,
  ];
  lines.push(...releaseLines(s, (name) => `${name} `));
  const counts = `requests ${s.lifetime.requests} since start (${s.requests} by the ${s.mode === 'cluster' ? 'current workers' : 'current image'}) · in flight ${s.inFlight}`;
  lines.push(
    s.mode === 'cluster' ? `workers ${s.workers.length} (${serving(s.workers)} serving) · ${counts}` : counts,
  );
  lines.push(lifetimeLine(s));
  if (s.memory !== undefined) lines.push(`memory ${memoryLine(s.memory)}`);
  const last = s.restarts.at(-1);
  if (last !== undefined) {
    lines.push(
      `last restart #${last.id} (${last.rollback === true ? `${last.kind} rollback` : last.kind}${last.release === undefined ? '' : ` to ${releaseCell(last.release)}`}): ${last.outcome}${last.outcome === 'in-progress' ? '' : ` in ${duration(last)}`}${last.error === null ? '' : `: ${oneLine(last.error)}`}`,
    );
  }
  return lines.join('\n');
}

export function formatStats(s: Stats, now = Date.now()): string {
  const listening = s.listeners.reduce<Map<string, number>>(
    (m, l) => m.set(l.address, (m.get(l.address) ?? 0) + 1),
    new Map(),
  );
  const parts = [
    `nserve ${s.version} · ${s.mode} · pid ${s.pid} · ${s.state} · phase ${s.phase}`,
    `started    ${s.startedAt} (up ${seconds(now - Date.parse(s.startedAt))})`,
    ...releaseLines(s, (name) => name.padEnd(11)),
    `requests   ${s.lifetime.requests} since start · ${s.requests} by the ${s.mode === 'cluster' ? 'current workers' : 'current image'} · ${s.inFlight} in flight`,
    `lifetime   ${lifetimeLine(s)}`,
    `listening  ${[...listening].map(([a, n]) => (n > 1 ? `${a} (${n} slots)` : a)).join(', ') || '-'}`,
    `fds        ${s.fdCount}`,
  ];
  if (s.memory !== undefined) parts.push(`memory     ${memoryLine(s.memory)}`);
  if (s.standby !== undefined)
    parts.push(
      `standby    ${s.standby.ready} ready${s.standby.starting > 0 ? ` · ${s.standby.starting} starting` : ''}`,
    );
  if (s.workers.length > 0) {
    parts.push(
      '',
      table(
        [
          'WORKER',
          'PID',
          'PHASE',
          'STATE',
          'UP',
          'CHECK-IN',
          'REQUESTS',
          'IN FLIGHT',
          'ELD P99',
          'RSS',
          'ANON',
          'CRASHES',
          'SLOTS',
          'DIRECTORY',
        ],
        s.workers.map((w) => [
          String(w.index),
          String(w.pid),
          String(w.phase),
          w.state,
          w.startedAt === null ? UNKNOWN : seconds(Math.max(0, now - Date.parse(w.startedAt))),
          `${seconds(Math.max(0, now - Date.parse(w.lastCheckin)))} ago`,
          String(w.requests),
          String(w.inFlight),
          w.eventLoopDelayP99Ms === null ? UNKNOWN : `${w.eventLoopDelayP99Ms} ms`,
          w.rss === null ? UNKNOWN : bytes(w.rss),
          w.anon == null ? UNKNOWN : bytes(w.anon),
          String(w.crashes),
          String(w.slots.length),
          w.directory,
        ]),
      ),
    );
  }
  if (s.restarts.length > 0) {
    parts.push(
      '',
      table(
        ['RESTART', 'KIND', 'STARTED', 'TOOK', 'FROM', 'RELEASE', 'OUTCOME', 'ERROR'],
        s.restarts
          .slice(-10)
          .map((r) => [
            `#${r.id}`,
            r.rollback === true ? `${r.kind} rollback` : r.kind,
            r.started,
            duration(r),
            releaseCell(r.previous),
            releaseCell(r.release),
            r.outcome,
            oneLine(r.error),
          ]),
      ),
    );
  }
  return parts.join('\n');
}

// ── commander ──────────────────────────────────────────────────────────────────────────────────────────
