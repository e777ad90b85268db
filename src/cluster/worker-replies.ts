// A worker's answers to the master about what it serves: the slots it is lent (accepting on them, or
// declining once draining), slots taken back, a certificate reload's verdict, a metrics scrape.
import { errorMessage } from '../errors.js';
import { logEvent } from '../log/events.js';
import type { Logger } from '../log/logger.js';
import * as native from '../native/index.js';
import type { AppServer } from '../server/index.js';
import { clip, type FromWorker, METRICS_CHUNK, METRICS_MAX_PARTS } from './protocol.js';

/** What the replies need of the worker: its server (once booted), whether it drains, its channel. */
export interface ReplyingWorker {
  readonly server: AppServer | undefined;
  readonly draining: boolean;
  readonly log: Logger;
  send(msg: FromWorker): void;
}

export class WorkerReplies {
  /** Slot descriptors lent by the master and not served yet (they came while booting). */
  readonly held = new Map<string, number>();

  constructor(private readonly w: ReplyingWorker) {}

  /** Slots lent by the master: held until the app serves, then accepted on (or declined, draining). */
  lend(keys: readonly string[], fds: readonly number[]): void {
    keys.forEach((key, i) => {
      const fd = fds[i];
      if (fd !== undefined) this.held.set(key, fd);
    });
    void this.acceptOn([...keys]);
  }

  async acceptOn(keys: string[]): Promise<void> {
    const { server, draining } = this.w;
    if (server === undefined) return; // served once booted
    if (draining) {
      // Too late: decline, so the master lends these slots elsewhere instead of waiting for us.
      for (const key of keys) {
        const fd = this.held.get(key);
        this.held.delete(key);
        if (fd !== undefined) native.close(fd);
      }
      this.w.send({ t: 'released', keys });
      return;
    }
    for (const key of keys) {
      const fd = this.held.get(key);
      if (fd === undefined) continue;
      this.held.delete(key);
      await server.serve(key, fd);
    }
    this.w.send({ t: 'accepting', keys });
  }

  release(keys: string[]): void {
    const server = this.w.server;
    if (server !== undefined) for (const key of keys) server.stopAccepting(key);
    this.w.send({ t: 'released', keys });
  }

  /** Re-read the ssl:// binds' files; still booting, the server will read them when it is made. */
  reloadCerts(id: number): void {
    const binds = (this.w.server?.reloadCerts() ?? []).map((b) =>
      b.error === undefined ? b : { ...b, error: clip(b.error) },
    );
    for (const b of binds) {
      if (!b.ok)
        logEvent(
          this.w.log,
          'tls.reload.refused',
          { bind: b.uri },
          `reload-certs refused, the old certificate keeps serving: ${b.error}`,
        );
    }
    this.w.send({ t: 'certs', id, binds });
  }

  /** A scrape: prom-client is loaded on the first one (a worker nobody scrapes never pays for it). */
  async answerMetrics(id: number): Promise<void> {
    try {
      const { chunked, workerReply } = await import('../metrics/worker-reply.js');
      const parts = chunked(await workerReply(this.w.server), METRICS_CHUNK, METRICS_MAX_PARTS);
      parts.forEach((text, part) => {
        this.w.send({ t: 'metrics', id, part, parts: parts.length, text });
      });
    } catch (err) {
      logEvent(
        this.w.log,
        'worker.metrics.failed',
        { err },
        `cannot answer a metrics request: ${errorMessage(err)}`,
      );
    }
  }
}
