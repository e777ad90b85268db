// What the master adds to a scrape: each worker's metrics, gathered over its channel with a deadline
// (a worker that does not answer in time is left out and counted), and the cluster's own gauges. Worker
// events feed the store: boots, exits, and each worker's request totals (heartbeat, drained), so that
// the totals of a worker that exits are kept.
import type { Master } from '../cluster/master.js';
import { servingPids } from '../cluster/report.js';
import type { WorkerHandle } from '../cluster/worker-handle.js';
import type { WorkerEvent } from '../cluster/worker-states.js';
import { logEvent } from '../log/events.js';
import type { Logger } from '../log/logger.js';
import { memoryView, readRssAnon } from '../memory/index.js';
import { gauge, type MetricJson, withLabels } from './json.js';
import { memoryMetrics } from './memory.js';
import type { MetricsSource } from './metrics-plane.js';
import { answered, isTotals } from './requests.js';
import type { MetricsStore } from './store.js';

const STATES = ['booting', 'booted', 'draining'] as const;

/** What a scrape reads of the master: its workers, totals, sockets and generation (read-only). */
export type ClusterView = Pick<Master, 'pool' | 'history' | 'listeners' | 'count' | 'generation'>;

export function clusterSource(m: ClusterView): MetricsSource {
  return {
    self: 'master',
    listeners: () => m.listeners,
    collect: (store, deadlineMs) => collect(m, store, deadlineMs),
  };
}

async function collect(m: ClusterView, store: MetricsStore, deadlineMs: number): Promise<MetricJson[][]> {
  const workers = m.pool.alive();
  const replies = await Promise.all(workers.map((w) => w.requestMetrics(deadlineMs)));
  const out: MetricJson[][] = [];
  let unanswered = 0;
  workers.forEach((w, i) => {
    const reply = replies[i];
    if (reply === undefined) {
      unanswered++;
      return;
    }
    const worker = String(w.index);
    // (A worker that exited while others answered has been counted at its exit already.)
    if (reply.totals !== undefined && w.alive) store.workerSeen(w.pid, worker, reply.totals);
    // nserve's own gauges are per worker index (two processes of one index, during a phased restart's
    // surge, add up); a process's default metrics belong to that process: labelled with its pid too, so
    // that its counters (CPU seconds, GC) never seem to go back when a new process takes the index.
    const own = reply.metrics.filter((x) => x.name.startsWith('nserve_'));
    const proc = reply.metrics.filter((x) => !x.name.startsWith('nserve_'));
    out.push(withLabels(own, { worker }), withLabels(proc, { worker, pid: String(w.pid) }));
  });
  out.push(clusterGauges(m, workers, unanswered), memoryMetrics(memoryView(servingPids(m))));
  return out;
}

function clusterGauges(m: ClusterView, alive: readonly WorkerHandle[], unanswered: number): MetricJson[] {
  const accepting = alive.filter((w) => w.keys.size > 0);
  const generations = new Set(accepting.map((w) => w.generation));
  return [
    gauge(
      'nserve_metrics_workers_unanswered',
      'Workers that did not answer this scrape within the deadline (their metrics are left out)',
      [{ value: unanswered }],
    ),
    gauge('nserve_workers_configured', 'The configured worker count', [{ value: m.count }]),
    gauge(
      'nserve_workers',
      'Live worker processes by state',
      STATES.map((state) => ({ labels: { state }, value: alive.filter((w) => w.state === state).length })),
    ),
    gauge('nserve_generation', 'The code generation that serves (bumped by each restart)', [
      { value: m.generation },
    ]),
    gauge(
      'nserve_worker_info',
      'One per live worker process: its code generation, release directory and pid (always 1)',
      alive.map((w) => ({
        labels: {
          worker: String(w.index),
          pid: String(w.pid),
          generation: String(w.generation),
          directory: w.directory,
          state: w.state,
        },
        value: 1,
      })),
    ),
    gauge(
      'nserve_worker_anon_memory_bytes',
      "Each live worker's anonymous memory (RssAnon): what another worker like it needs",
      alive.flatMap((w) => {
        const anon = readRssAnon(w.pid);
        return anon === undefined
          ? []
          : [{ labels: { worker: String(w.index), pid: String(w.pid) }, value: anon }];
      }),
    ),
    gauge(
      'nserve_versions_serving',
      'Code generations accepting connections at once (2 during a phased restart)',
      [{ value: generations.size }],
    ),
    gauge('nserve_mixed_versions', '1 while two code versions serve at once', [
      { value: generations.size > 1 ? 1 : 0 },
    ]),
    gauge(
      'nserve_previous_release_missing',
      '1 while the workers run a release no longer on disk after a failed canary (a new worker would load the failed release)',
      [{ value: m.history.deploys.noWayBack === undefined ? 0 : 1 }],
    ),
    gauge(
      'nserve_workers_withheld',
      'Worker indexes left without a worker until the next good deploy (only the failed release is on disk)',
      [{ value: m.history.deploys.noWayBack?.withheld.length ?? 0 }],
    ),
  ];
}

/** Worker events the store keeps (called for every worker, spawned or adopted). */
export function onWorkerEvent(store: MetricsStore, w: WorkerHandle, msg: WorkerEvent, log: Logger): void {
  const worker = String(w.index);
  switch (msg.t) {
    case 'booted':
      store.workerBooted((Date.now() - w.spawnedAt) / 1000);
      break;
    case 'boot-error':
      store.bootFailed();
      break;
    case 'drained':
      drained.add(w);
      if (isTotals(msg.totals)) store.workerSeen(w.pid, worker, msg.totals);
      break;
    case 'heartbeat':
      if (!isTotals(msg.totals)) break;
      if (msg.final === true) store.workerFinal(w.pid, worker, msg.totals);
      else store.workerSeen(w.pid, worker, msg.totals);
      break;
    case 'exit': {
      const account = store.workerExited(w.pid, exitReason(w, msg));
      if (!account.final && w.bootedAt !== undefined) reportShortfall(log, w, msg, account.totals);
      break;
    }
    default:
      break;
  }
}

/**
 * A worker that served went without its last report (killed, crashed, or a worker of an nserve that does
 * not send one): what it answered after its last report (a heartbeat, at most one interval before) is not
 * in the request counters. Say how much, as far as the master can know: the requests it had begun and
 * not answered at that report, and how long before its exit the report came.
 */
function reportShortfall(
  log: Logger,
  w: WorkerHandle,
  exit: { code: number | null; signal: string | null },
  totals: readonly number[] | undefined,
): void {
  const sinceReportMs = Math.max(0, Date.now() - w.lastCheckin);
  const unanswered = Math.max(0, w.stats.requests - (totals === undefined ? 0 : answered(totals)));
  logEvent(
    log,
    'metrics.report.missing',
    {
      worker: w.index,
      workerPid: w.pid,
      code: exit.code,
      signal: exit.signal,
      sinceReportMs,
      unansweredAtReport: unanswered,
    },
    `worker ${w.index} (pid ${w.pid}) exited without its last report: requests it answered in its last ${sinceReportMs} ms are not in nserve_http_requests_total (${unanswered} were in flight at its last report)`,
  );
}

/** Workers that said `drained` to this image. */
const drained = new WeakSet<WorkerHandle>();

/**
 * drained (told to go, and went), protocol (broke it), oom (the OOM killer), boot (never booted), signal,
 * exit (code 0), crash.
 */
function exitReason(w: WorkerHandle, exit: { code: number | null; signal: string | null }): string {
  if (w.violation !== undefined) return 'protocol';
  if (w.oomKill?.oom === true) return 'oom';
  if (w.bootedAt === undefined) return 'boot';
  // A worker exits 0 only at the end of a drain; its `drained` may have gone to the previous master image
  // (told to drain before a hot restart's exec, gone after it).
  if (drained.has(w) || (w.toldToDrain && exit.code === 0)) return 'drained';
  if (exit.signal !== null) return 'signal';
  return exit.code === 0 ? 'exit' : 'crash';
}
