// What the master reports about the cluster: stats (control server, `nserve ctl`) and descriptors
// (`nserve fds`).
import * as fs from 'node:fs';
import { lifetimeView, listenerViews, processStartedAt, type Stats } from '../control/status.js';
import type { TlsStats } from '../listen/tls.js';
import { memoryView, readRssAnon } from '../memory/index.js';
import { addTotals, type Durations, durationsOf, emptyTotals } from '../metrics/requests.js';
import { inspect, type ProcessFds } from '../os/descriptors.js';
import { VERSION } from '../version.js';
import type { Master } from './master.js';

export function clusterStats(m: Master): Stats {
  const all = m.pool.alive();
  return {
    version: VERSION,
    mode: 'cluster',
    pid: process.pid,
    startedAt: m.ctx.startedAt,
    phase: m.generation,
    state: m.lifecycle.state,
    requests: all.reduce((n, w) => n + w.stats.requests, 0),
    inFlight: all.reduce((n, w) => n + w.stats.inFlight, 0),
    lifetime: lifetimeView(
      m.history,
      all.reduce((n, w) => n + w.stats.requests, 0),
    ),
    directory: m.directory,
    longLived: all.reduce((n, w) => n + w.stats.longLived, 0),
    workers: all.map((w) => ({
      index: w.index,
      pid: w.pid,
      phase: w.generation,
      state: w.state,
      booted: w.bootedAt !== undefined,
      startedAt: isoOrNull(processStartedAt(w.pid)),
      lastCheckin: new Date(w.lastCheckin).toISOString(),
      requests: w.stats.requests,
      inFlight: w.stats.inFlight,
      longLived: w.stats.longLived,
      // A heartbeat always carries the RSS: 0 means none came yet (unknown, not zero).
      eventLoopDelayP99Ms: w.stats.rss > 0 ? w.stats.eventLoopDelayMs : null,
      rss: w.stats.rss > 0 ? w.stats.rss : null,
      anon: readRssAnon(w.pid) ?? null,
      crashes: m.history.totals.crashesByWorker[w.index] ?? 0,
      directory: w.directory,
      slots: [...w.keys],
    })),
    restarts: m.history.records,
    listeners: listenerViews(m.listeners),
    fdCount: fs.readdirSync('/proc/self/fd').length,
    memory: memoryView(servingPids(m)),
    ...tlsField(m),
    durations: clusterDurations(m),
    ...(m.config.standby > 0 ? { standby: m.pool.standbys.counts() } : {}),
  };
}

/** The request durations of every worker this server had, where requests are counted. */
function clusterDurations(m: Master): Durations | null {
  const store = m.ctx.metrics?.store;
  if (store === undefined) return null;
  const all = emptyTotals();
  for (const t of store.requestTotals().values()) addTotals(all, t);
  return durationsOf(all);
}

/** A STATUS= line a person can read in `systemctl status`. */
export function statusLine(m: Master): string {
  const serving = m.pool.current().filter((w) => w.serving).length;
  const requests = m.pool.tracked().reduce((n, w) => n + w.stats.requests, 0);
  return `cluster: ${serving}/${m.count} workers, phase ${m.generation}, ${requests} requests`;
}

/** The current generation's booted workers: what a hot restart would boot again. */
export function servingPids(m: Pick<Master, 'pool'>): number[] {
  return m.pool
    .current()
    .filter((w) => w.serving)
    .map((w) => w.pid);
}

function tlsField(m: Master): { tls?: TlsStats } {
  const tls = m.certs.stats();
  return tls === undefined ? {} : { tls };
}

export function clusterFds(m: Master): ProcessFds[] {
  const alive = m.pool.alive();
  const master = {
    ...inspect(process.pid, 'master', {
      listeners: m.listeners.map((l) => l.fd),
      channels: alive.map((w) => w.channel.fd),
      control: m.ctx.controlFds ?? [],
      locks: m.ctx.locks?.map((l) => l.fd) ?? [],
    }),
    history: m.history.fdCounts(),
  };
  const workers: ProcessFds[] = [];
  for (const w of alive) {
    try {
      workers.push(inspect(w.pid, 'worker', { channels: [3] }, w.index));
    } catch {
      // exited while we looked
    }
  }
  return [master, ...workers];
}

function isoOrNull(ms: number | undefined): string | null {
  return ms === undefined ? null : new Date(ms).toISOString();
}
