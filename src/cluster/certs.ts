// Certificate rotation in cluster mode (`reload-certs`: SIGHUP, `nserve ctl reload-certs`). The master
// holds no key: it asks every live worker that is not draining to re-read its ssl:// binds' files
// (`reload-certs` on the channel) and gathers the verdicts (`certs`). A worker that refuses new files
// keeps serving its old certificate; the verdict and one log line say why. Workers spawned later read
// the files afresh at boot, as every restart does.
//
// One reload at a time, and none during a restart (which reads the files afresh anyway): a verdict that
// arrived after a hot restart's exec would be unasked in the new image, which treats that as a violation.

import {
  type CertInfo,
  type CertReload,
  type CertVerdict,
  describeReload,
  mergeVerdicts,
  readCertInfo,
  type TlsBindOptions,
  type TlsStats,
  tlsStats,
} from '../listen/tls.js';
import { logEvent } from '../log/events.js';
import type { Logger } from '../log/logger.js';
import type { WorkerHandle } from './worker-handle.js';

/** How long a worker may take to re-read its files and answer. */
const VERDICT_TIMEOUT_MS = 5000;

export interface CertsHost {
  log: Logger;
  /** The workers to ask (live, not draining). */
  workers(): WorkerHandle[];
  /** The ssl:// binds of the configuration. */
  binds: readonly { uri: string; tls?: TlsBindOptions | undefined }[];
}

export class ClusterCerts {
  /** What each bind serves, as the workers last reported it (the files' at start-up). */
  private readonly served = new Map<string, CertInfo>();
  private last: CertReload | undefined;
  private nextId = 1;
  private inProgress: Promise<CertReload> | undefined;

  constructor(private readonly host: CertsHost) {
    // Public data only: the certificate, never the key (the config check already matched them).
    for (const b of host.binds) {
      if (b.tls === undefined) continue;
      const info = readCertInfo(b.tls.cert);
      if (info !== undefined) this.served.set(b.uri, info);
    }
  }

  get configured(): boolean {
    return this.host.binds.some((b) => b.tls !== undefined);
  }

  get reloading(): boolean {
    return this.inProgress !== undefined;
  }

  stats(): TlsStats | undefined {
    if (!this.configured) return undefined;
    return tlsStats(
      [...this.served].map(([uri, cert]) => ({ uri, cert })),
      this.last,
    );
  }

  /** Ask every worker; a reload already running is joined, not repeated. */
  reload(): Promise<CertReload> {
    this.inProgress ??= this.run().finally(() => {
      this.inProgress = undefined;
    });
    return this.inProgress;
  }

  private async run(): Promise<CertReload> {
    const id = this.nextId++;
    const workers = this.host.workers();
    const answers = await Promise.all(workers.map((w) => this.ask(w, id)));
    const binds = mergeVerdicts(answers.map((a) => a.binds));
    // A bind no worker could report on (all booting): what it served stays what stats say.
    for (const b of binds) if (b.ok && b.cert !== undefined) this.served.set(b.uri, b.cert);
    const report: CertReload = {
      id,
      at: new Date().toISOString(),
      ok: answers.every((a) => a.ok) && binds.every((b) => b.ok),
      binds,
      workers: workers.map((w, i) => {
        const a = answers[i]!;
        return { index: w.index, pid: w.pid, ok: a.ok, ...(a.error === undefined ? {} : { error: a.error }) };
      }),
    };
    this.last = report;
    const line = describeReload(report);
    if (report.ok)
      logEvent(this.host.log, 'tls.reload.done', { reload: report.id, binds: report.binds }, line);
    else
      logEvent(
        this.host.log,
        'tls.reload.failed',
        { code: 'ERR_NSERVE_TLS', reload: report.id, binds: report.binds },
        line,
      );
    return report;
  }

  private async ask(
    w: WorkerHandle,
    id: number,
  ): Promise<{ ok: boolean; binds: CertVerdict[]; error?: string }> {
    const answer = w.waitFor('answer reload-certs', VERDICT_TIMEOUT_MS, (msg) => {
      if (msg.t === 'certs' && msg.id === id) return { binds: msg.binds, error: undefined };
      if (msg.t === 'exit') return { binds: [], error: 'exited before answering' };
      if (msg.t === 'violation') return { binds: [], error: `broke the protocol: ${msg.reason}` };
      return undefined;
    });
    try {
      w.send({ t: 'reload-certs', id });
    } catch (err) {
      answer.catch(() => {});
      return { ok: false, binds: [], error: `cannot be asked: ${String(err)}` };
    }
    try {
      const a = await answer;
      const refused = a.binds.find((b) => !b.ok);
      const error = a.error ?? refused?.error;
      return { ok: error === undefined, binds: a.binds, ...(error === undefined ? {} : { error }) };
    } catch (err) {
      return { ok: false, binds: [], error: err instanceof Error ? err.message : String(err) };
    }
  }
}
