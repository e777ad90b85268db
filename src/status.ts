// What a running server reports about itself (control server /stats, `nserve ctl`), and the restart
// history, which survives hot restarts (handed to the new image: restart/handoff.ts).
import { formatAddress, type Listener } from './binder.js';
import type { ProcessFds } from './fds.js';
import type { Action } from './signals.js';

export type RestartKind = 'hot' | 'phased';
export type RestartOutcome = 'in-progress' | 'ok' | 'failed';

export interface RestartRecord {
  id: number;
  kind: RestartKind;
  started: string;
  finished: string | null;
  outcome: RestartOutcome;
  error: string | null;
  /** Descriptors open in the server (master) once the restart finished. */
  fds?: number;
  /** Descriptors open in each worker once the restart finished (cluster). */
  workerFds?: number[];
  /** Hot restart: when no code accepted any more (single mode: before the exec), and for how long. */
  pausedAt?: number;
  pauseMs?: number;
}

const KEEP = 50;

export class RestartHistory {
  /** Told of every verdict (the metrics store counts restarts by kind and result). */
  onFinish: ((record: RestartRecord) => void) | undefined;

  constructor(readonly records: RestartRecord[] = []) {}

  /** The history handed over by the previous image (records of an unknown shape are dropped). */
  static fromHandoff(records: readonly unknown[] | undefined): RestartHistory {
    return new RestartHistory((records ?? []).filter(isRecord).slice(-KEEP));
  }

  toHandoff(): RestartRecord[] {
    return this.records.slice(-KEEP);
  }

  begin(kind: RestartKind): RestartRecord {
    const id = (this.records.at(-1)?.id ?? 0) + 1;
    const record: RestartRecord = {
      id,
      kind,
      started: new Date().toISOString(),
      finished: null,
      outcome: 'in-progress',
      error: null,
    };
    this.records.push(record);
    if (this.records.length > KEEP) this.records.splice(0, this.records.length - KEEP);
    return record;
  }

  /** Descriptor counts after each finished restart, oldest first. */
  fdCounts(): number[] {
    return this.records.flatMap((r) => (r.fds === undefined ? [] : [r.fds]));
  }

  /** The restart that is still in progress (e.g. the one that exec'd into this image). */
  current(): RestartRecord | undefined {
    const last = this.records.at(-1);
    return last?.outcome === 'in-progress' ? last : undefined;
  }

  finish(record: RestartRecord | undefined, outcome: 'ok' | 'failed', error?: string): void {
    if (record === undefined) return;
    record.outcome = outcome;
    record.finished = new Date().toISOString();
    record.error = error ?? null;
    this.onFinish?.(record);
  }
}

function isRecord(v: unknown): v is RestartRecord {
  if (typeof v !== 'object' || v === null) return false;
  const r = v as Record<string, unknown>;
  return (
    typeof r.id === 'number' && (r.kind === 'hot' || r.kind === 'phased') && typeof r.started === 'string'
  );
}

export interface WorkerView {
  index: number;
  pid: number;
  /** The worker's code generation. */
  phase: number;
  state: string;
  booted: boolean;
  lastCheckin: string;
  requests: number;
  inFlight: number;
  /** Long-lived connections open (WebSockets, event streams). */
  longLived: number;
  eventLoopDelayP99Ms: number;
  rss: number;
  directory: string;
  slots: string[];
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
  requests: number;
  inFlight: number;
  /** Long-lived connections open (WebSockets, event streams), in all workers. */
  longLived: number;
  workers: WorkerView[];
  restarts: RestartRecord[];
  listeners: ListenerView[];
  fdCount: number;
}

export type ControlAction = Action | 'halt' | 'reload-worker-directory';

export type ControlAnswer =
  | { accepted: true; restart?: number; detail?: string }
  | { accepted: false; status: number; reason: string };

/** What the control server needs from a running server (single or master). */
export interface Controller {
  stats(): Stats;
  perform(action: ControlAction): ControlAnswer;
  /** Every descriptor of the server and its workers, with roles and leak flags (GET /fds, nserve fds). */
  fds?(): ProcessFds[];
  /** GET /metrics: the Prometheus text format and its content type (metrics/plane.ts). */
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
