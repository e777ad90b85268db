// What a running server reports about itself (control server /stats, `nserve ctl`). The restart
// history it shows lives in restart/history.ts.
import * as fs from 'node:fs';
import type { MixedVersions, NoWayBack } from '../deploy/record.js';
import type { ReleaseRef } from '../deploy/release.js';
import { formatAddress } from '../listen/bind-uri.js';
import type { Listener } from '../listen/binder.js';
import type { CertReload, TlsStats } from '../listen/tls.js';
import type { MemoryView } from '../memory/index.js';
import type { Durations } from '../metrics/requests.js';
import type { ProcessFds } from '../os/descriptors.js';
import type { RestartHistory, RestartKind, RestartRecord } from '../restart/history.js';
import type { Action } from './signals.js';

export interface WorkerView {
  index: number;
  pid: number;
  /** The worker's code generation. */
  phase: number;
  state: string;
  booted: boolean;
  /** When the worker process started (from /proc, so also right for workers adopted across an exec). */
  startedAt: string | null;
  /** The worker's last message (or its spawn). */
  lastCheckin: string;
  requests: number;
  inFlight: number;
  /** Long-lived connections open (WebSockets, event streams). */
  longLived: number;
  /**
   * p99 over the last second of how late a 20 ms timer fired (monitorEventLoopDelay at 20 ms resolution,
   * minus those 20 ms): 0 on an idle loop; null until the first check-in.
   */
  eventLoopDelayP99Ms: number | null;
  /** Bytes; null until the first check-in. */
  rss: number | null;
  /**
   * Anonymous memory (RssAnon, bytes), read by the master from /proc: what another worker like it would
   * need (RSS also counts shared pages); null when it could not be read. Absent from an older nserve.
   */
  anon?: number | null;
  /** Crashes of this worker index over the server's life. */
  crashes: number;
  directory: string;
  slots: string[];
}

/** When process `pid` started (epoch ms), from /proc/PID/stat and the boot time; undefined if unknown. */
export function processStartedAt(pid: number): number | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // Field 22 (starttime), in clock ticks since boot; USER_HZ is 100 on Linux.
    const ticks = Number(fields[19]);
    const btime = Number(/^btime (\d+)$/m.exec(fs.readFileSync('/proc/stat', 'utf8'))?.[1]);
    if (!Number.isFinite(ticks) || !Number.isFinite(btime)) return undefined;
    return btime * 1000 + ticks * 10;
  } catch {
    return undefined;
  }
}

export interface ListenerView {
  uri: string;
  slot: number;
  fd: number;
  address: string;
  inherited: boolean;
}

export interface Stats {
  version: string;
  mode: 'single' | 'cluster';
  pid: number;
  startedAt: string;
  /** The code generation (Puma calls it the phase): of the workers (cluster), or hot restarts (single). */
  phase: number;
  state: string;
  /** Requests served by the processes serving now (the current workers, or this image in single mode). */
  requests: number;
  inFlight: number;
  /** Totals over the server's life (across worker replacements and hot restarts). */
  lifetime: {
    requests: number;
    workerCrashes: number;
    restarts: Record<RestartKind, number>;
    /** Workers replaced for staying over --worker-max-memory. */
    memoryReplacements: number;
  };
  /** The release directory the server serves (resolved). */
  directory: string;
  /** Long-lived connections open (WebSockets, event streams), in all workers. */
  longLived: number;
  workers: WorkerView[];
  restarts: RestartRecord[];
  listeners: ListenerView[];
  fdCount: number;
  /** With ssl:// binds: each bind's certificate (subject, expiry) and the last reload-certs. */
  tls?: TlsStats;
  /** The release that serves (directory and version: deploy/record.ts); absent from an older nserve. */
  release?: ReleaseRef | null;
  /** Where `ctl rollback` would go now (null: nowhere). */
  rollbackTo?: ReleaseRef | null;
  /** Two releases serve side by side for longer than a restart explains (cluster mode). */
  mixedVersions?: MixedVersions | null;
  /**
   * A failed canary could not bring the previous release back from disk (edited in place, removed): the
   * workers run it from memory, with indexes left empty rather than loading the failed release.
   */
  noWayBack?: NoWayBack | null;
  /** The cgroup's memory limit, working set and headroom (memory/cgroup.ts); absent from an older nserve. */
  memory?: MemoryView;
  /**
   * Request durations over the server's life, where requests are counted (a control server or metrics
   * listener is configured): the dashboard's latency chart. Absent from an older nserve.
   */
  durations?: Durations | null;
  /** Cluster mode with --standby: standby workers ready to be woken, and still starting. */
  standby?: { ready: number; starting: number };
}

export type ControlAction = Action | 'halt' | 'reload-worker-directory' | 'rollback';

/** Options of a control action (so far: the kind of a rollback; unset follows the last restart's). */
export interface ActionOptions {
  kind?: RestartKind;
}

export type ControlAnswer =
  | { accepted: true; restart?: number; detail?: string }
  | { accepted: false; status: number; reason: string };

/** What the control server needs from a running server (single or master). */
export interface Controller {
  stats(): Stats;
  perform(action: ControlAction, options?: ActionOptions): ControlAnswer;
  /** Why `action` would be refused now (launcher/refusals.ts), without doing anything. */
  refuses(action: ControlAction): string | undefined;
  /** Every descriptor of the server and its workers, with roles and leak flags (GET /fds, nserve fds). */
  fds?(): ProcessFds[];
  /**
   * Re-read every ssl:// bind's certificate in every accepting process: the verdict, or why it cannot
   * start (no ssl:// bind, a restart in progress).
   */
  reloadCerts?(): Promise<CertReload> | { refused: string };
  /** GET /metrics: the Prometheus text format and its content type (metrics/metrics-plane.ts). */
  metrics?(): Promise<{ text: string; contentType: string }>;
}

export function listenerViews(listeners: readonly Listener[]): ListenerView[] {
  return listeners.map((l) => ({
    uri: l.spec.uri,
    slot: l.slot,
    fd: l.fd,
    address: formatAddress(l.address),
    inherited: l.inherited,
  }));
}

/** The lifetime view of the totals, given what the processes serving now have served. */
export function lifetimeView(history: RestartHistory, servingNow: number): Stats['lifetime'] {
  const t = history.totals;
  return {
    requests: t.requests + servingNow,
    workerCrashes: t.crashes,
    restarts: { ...t.restarts },
    memoryReplacements: t.memoryReplacements,
  };
}
