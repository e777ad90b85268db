// The master's view of one worker process. Its states, stats and events are worker-states.ts; its metrics
// scrapes are worker-metrics.ts.
import type { ChildProcess } from 'node:child_process';
import { Lifecycle } from '../launcher/lifecycle.js';
import { logEvent } from '../log/events.js';
import type { Logger } from '../log/logger.js';
import type { OomVerdict } from '../memory/oom.js';
import type { WorkerReply } from '../metrics/json.js';
import * as native from '../native/index.js';
import { watchExit } from '../os/reaper.js';
import { Channel } from './channel.js';
import { type FromWorker, type Implausible, parseFromWorker, type ToWorker } from './protocol.js';
import { MetricsScrape } from './worker-metrics.js';
import {
  CHANNEL_LOST_GRACE_MS,
  IMPLAUSIBLE_LOG_EVERY_MS,
  MESSAGES_PER_SECOND,
  MessageRate,
  WORKER_TRANSITIONS,
  type WorkerEvent,
  type WorkerSpec,
  type WorkerState,
  type WorkerStats,
} from './worker-states.js';

type Listener = (msg: WorkerEvent) => void;

export class WorkerHandle {
  readonly index: number;
  readonly generation: number;
  readonly pid: number;
  readonly child: ChildProcess | undefined;
  private readonly lifecycle: Lifecycle<WorkerState>;
  /** Asked to be replaced; a replacement is on its way. */
  replacing = false;
  /** Why it asked to leave (an uncaught exception), once it did: read by a canary watch begun later. */
  leaving: string | undefined;
  /** Check-ins in a row with RSS over --worker-max-memory. */
  overMemory = 0;
  /** Slot keys this worker is accepting on. */
  readonly keys = new Set<string>();
  readonly spawnedAt = Date.now();
  bootedAt: number | undefined;
  /** When it reported its config read (before loading the app). */
  configuredAt: number | undefined;
  lastCheckin = Date.now();
  stats: WorkerStats = {
    requests: 0,
    inFlight: 0,
    eventLoopDelayMs: 0,
    rss: 0,
    longLived: 0,
    connections: 0,
  };
  file: string | undefined;
  directory: string;
  exit: { code: number | null; signal: string | null } | undefined;
  /** Set at its exit when the OOM killer killed it (memory/oom.ts), before any listener hears of it. */
  oomKill: OomVerdict | undefined;
  readonly channel: Channel<FromWorker | Implausible, ToWorker>;
  private readonly listeners = new Set<Listener>();
  /** Slot keys sent to the worker and not yet confirmed: the only keys it may say it accepts on. */
  private readonly offered = new Set<string>();
  private drainSent = false;
  /** reload-certs ids sent and not answered: the only verdicts the worker may send. */
  private readonly certsAsked = new Set<number>();
  /** Set once the worker broke the protocol: nothing it says is believed any more. */
  violation: string | undefined;
  private readonly rate = new MessageRate();
  /** Metrics requests to this worker and their chunked answers (worker-metrics.ts). */
  private readonly scrape = new MetricsScrape();
  /** Implausible reports dropped (all of them) and since the last log line, and when that was. */
  implausibleDropped = 0;
  private implausibleUnlogged = 0;
  private implausibleLoggedAt = 0;
  private readonly log: Logger;
  /** Armed when the channel closed: kills a worker that goes on running without it. */
  private channelLost: NodeJS.Timeout | undefined;

  constructor(spec: WorkerSpec, log: Logger) {
    this.log = log;
    this.index = spec.index;
    this.generation = spec.generation;
    this.pid = spec.pid;
    this.child = spec.child;
    this.directory = spec.directory;
    this.log = log;
    this.lifecycle = new Lifecycle<WorkerState>(`worker ${spec.index}`, 'booting', WORKER_TRANSITIONS, log, {
      fields: { worker: spec.index, workerPid: spec.pid, generation: spec.generation },
      level: 'debug',
    });
    if (spec.adopted !== undefined) {
      // A worker of the next generation spawned before the exec may still be booting.
      if (spec.adopted.booted) {
        this.lifecycle.to('booted', 'adopted from the previous master image');
        this.bootedAt = Date.now();
      }
      if (spec.adopted.draining) {
        this.lifecycle.to('draining', 'was draining when handed over');
        this.drainSent = true;
      }
      for (const k of spec.adopted.offered) this.offered.add(k);
      for (const k of spec.adopted.keys) this.keys.add(k);
    }
    this.channel = new Channel<FromWorker | Implausible, ToWorker>(spec.channelFd, {
      parse: parseFromWorker,
      message: (msg, fds) => this.onMessage(msg, fds),
      invalid: (reason) => this.onViolation(reason),
      close: () => this.onChannelClosed(),
    });
    // Liveness is the process's, never the channel's: libuv reports the exit of a child it spawned; a
    // worker adopted across a hot restart is watched by PID (os/reaper.ts), whoever holds its channel.
    if (spec.child !== undefined) spec.child.once('exit', (code, signal) => this.onGone(code, signal));
    else watchExit(spec.pid, (status) => this.onGone(status?.code ?? null, status?.signal ?? null));
  }

  /** Slot keys sent to the worker and not confirmed yet (handed over across a hot restart). */
  get offeredKeys(): string[] {
    return [...this.offered];
  }

  get state(): WorkerState {
    return this.lifecycle.state;
  }

  /** The master (this image or the previous one) told it to drain. */
  get toldToDrain(): boolean {
    return this.drainSent;
  }

  /** Told to drain (or decided to): it will never be lent a slot again. */
  markDraining(reason: string): void {
    if (this.lifecycle.can('draining')) this.lifecycle.to('draining', reason);
  }

  get alive(): boolean {
    return this.state !== 'exited';
  }

  /** Booted, not draining: may be lent slots. */
  get serving(): boolean {
    return this.state === 'booted';
  }

  send(msg: ToWorker, fds: readonly number[] = []): void {
    if (msg.t === 'slots') for (const s of msg.slots) this.offered.add(s.key);
    if (msg.t === 'drain') this.drainSent = true;
    if (msg.t === 'reload-certs') this.certsAsked.add(msg.id);
    this.channel.send(msg, fds);
  }

  on(listener: Listener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  kill(signal: NodeJS.Signals): void {
    if (!this.alive) return;
    try {
      process.kill(this.pid, signal);
    } catch {
      // already gone
    }
  }

  /** Why `msg` cannot come from an honest worker in its current state, if it cannot. */
  private outOfOrder(msg: FromWorker): string | undefined {
    const state = this.state;
    switch (msg.t) {
      case 'configured':
        return this.bootedAt === undefined && this.configuredAt === undefined && state !== 'exited'
          ? undefined
          : `configured while ${state}`;
      case 'booted':
      case 'boot-error':
        // (A worker told to drain while booting may still report its boot.)
        return this.bootedAt === undefined && (state === 'booting' || state === 'draining')
          ? undefined
          : `${msg.t} while ${state}`;
      case 'accepting': {
        const unasked = msg.keys.filter((k) => !this.offered.has(k) && !this.keys.has(k));
        return unasked.length === 0
          ? undefined
          : `accepting on slots it was never sent: ${unasked.slice(0, 3).join(', ')}`;
      }
      case 'drained':
        return this.drainSent ? undefined : 'drained before it was told to drain';
      case 'certs':
        // Answered once: a verdict nobody asked for (or a second one) is a lie about what it serves.
        return this.certsAsked.delete(msg.id)
          ? undefined
          : `a certificate verdict it was not asked for (#${msg.id})`;
      case 'metrics':
        return this.scrape.outOfOrder(msg);
      default:
        return undefined;
    }
  }

  /** Why the message breaks the protocol: descriptors, a flood, out of state or order. */
  private refuse(msg: FromWorker | Implausible, fdCount: number): string | undefined {
    if (fdCount > 0) return `sent ${fdCount} descriptor(s)`;
    // The chunks of an answer the master is waiting for are bounded by the request (METRICS_MAX_PARTS):
    // they do not count against the rate, so scrapes can never make an honest worker look like a flood.
    if (msg.t === 'metrics' && this.scrape.answering(msg.id)) return this.outOfOrder(msg);
    if (!this.rate.take()) return `more than ${MESSAGES_PER_SECOND} messages a second`;
    return msg.t === 'implausible' ? undefined : this.outOfOrder(msg);
  }

  /**
   * A report with figures that cannot be true (protocol.ts Implausible): none of it is believed, the
   * worker is not replaced for it (it still checked in), and the log says so once a minute at most.
   */
  private dropImplausible(msg: Implausible): void {
    this.implausibleDropped++;
    this.implausibleUnlogged++;
    const now = Date.now();
    if (this.implausibleLoggedAt !== 0 && now - this.implausibleLoggedAt < IMPLAUSIBLE_LOG_EVERY_MS) return;
    logEvent(
      this.log,
      'worker.report.implausible',
      {
        worker: this.index,
        workerPid: this.pid,
        report: msg.report,
        reason: msg.reason,
        dropped: this.implausibleUnlogged,
      },
      `worker ${this.index} sent a ${msg.report} with implausible figures (${msg.reason}): dropped, the worker keeps serving${this.implausibleUnlogged > 1 ? ` (${this.implausibleUnlogged} dropped since the last report)` : ''}; at most one such line a minute`,
    );
    this.implausibleLoggedAt = now;
    this.implausibleUnlogged = 0;
  }

  private onMessage(msg: FromWorker | Implausible, fds: number[]): void {
    // A worker never sends descriptors: close whatever came, so none can pile up in the master.
    for (const fd of fds) {
      try {
        native.close(fd);
      } catch {
        // already closed
      }
    }
    if (this.violation !== undefined || !this.alive) {
      return;
    }
    const wrong = this.refuse(msg, fds.length);
    if (wrong !== undefined) {
      this.onViolation(wrong);
      return;
    }
    if (msg.t === 'implausible') {
      this.lastCheckin = Date.now();
      this.dropImplausible(msg);
      return;
    }
    if (msg.t === 'metrics') {
      const bad = this.scrape.onPart(msg);
      if (bad !== undefined) this.onViolation(bad);
      return;
    }
    const now = Date.now();
    this.lastCheckin = now;
    switch (msg.t) {
      case 'booted':
        if (this.lifecycle.can('booted')) this.lifecycle.to('booted', 'the app loaded');
        this.bootedAt = now;
        this.file = msg.file;
        this.directory = msg.directory;
        break;
      case 'configured':
        this.configuredAt = now;
        break;
      case 'leaving':
        this.leaving ??= msg.reason;
        break;
      case 'accepting':
        for (const k of msg.keys) {
          this.keys.add(k);
          this.offered.delete(k);
        }
        break;
      case 'released':
        for (const k of msg.keys) {
          this.keys.delete(k);
          this.offered.delete(k);
        }
        break;
      case 'heartbeat':
        this.stats = {
          requests: msg.requests,
          inFlight: msg.inFlight,
          eventLoopDelayMs: msg.eventLoopDelayMs,
          rss: msg.rss,
          longLived: msg.longLived,
          connections: msg.connections ?? 0,
        };
        break;
      default:
        break;
    }
    this.emit(msg);
  }

  /**
   * Ask the worker for its metrics; resolves with its checked reply, or undefined when it did not answer
   * whole within `timeoutMs` (or exited, or is no longer believed). One request at a time.
   */
  requestMetrics(timeoutMs: number): Promise<WorkerReply | undefined> {
    if (!this.alive || this.violation !== undefined || this.scrape.busy) return Promise.resolve(undefined);
    return this.scrape.request(timeoutMs, (id) => this.send({ t: 'metrics', id }));
  }

  private onViolation(reason: string): void {
    if (this.violation !== undefined || !this.alive) return;
    this.violation = reason;
    this.emit({ t: 'violation', reason });
  }

  /** Deliver an event; a listener's bug is logged by the caller's catch, never thrown into libuv. */
  private emit(event: WorkerEvent): void {
    for (const l of [...this.listeners]) {
      try {
        l(event);
      } catch (err) {
        process.emitWarning(`nserve: worker ${this.index} event handler failed: ${String(err)}`);
      }
    }
  }

  /**
   * The channel closes as the process exits, a moment before its exit is reported (by libuv, or by the
   * PID watch for an adopted worker): that report, not the channel, says the worker is gone. One that is
   * still running after the grace lost its channel (its app closed it): kill it, its exit follows.
   */
  private onChannelClosed(): void {
    if (this.exit !== undefined) return;
    this.channelLost = setTimeout(() => {
      if (!this.alive) return;
      logEvent(
        this.log,
        'worker.channel.closed',
        { worker: this.index, workerPid: this.pid, code: 'ERR_NSERVE_PROTOCOL', reason: 'channel closed' },
        `worker ${this.index} closed its channel but is still running: killing it`,
      );
      this.kill('SIGKILL');
    }, CHANNEL_LOST_GRACE_MS);
    this.channelLost.unref();
  }

  private onGone(code: number | null, signal: string | null): void {
    if (this.exit !== undefined) return;
    this.exit = { code, signal };
    clearTimeout(this.channelLost);
    // libuv may report the exit before the channel's last datagrams were read (a `drained` with the
    // worker's final request totals): read them while the worker still counts as alive.
    this.channel.readPending();
    this.lifecycle.to(
      'exited',
      signal !== null ? `signal ${signal}` : code !== null ? `exit code ${code}` : 'exit status unknown',
    );
    this.keys.clear();
    this.scrape.cancel();
    this.channel.close();
    this.emit({ t: 'exit', code, signal });
  }

  /** Wait for a message (or exit) matching `pick`, at most `timeoutMs`. */
  waitFor<T>(
    what: string,
    timeoutMs: number,
    pick: (msg: Parameters<Listener>[0]) => T | undefined,
  ): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        off();
        reject(new Error(`worker ${this.index} (pid ${this.pid}) did not ${what} within ${timeoutMs} ms`));
      }, timeoutMs);
      const off = this.on((msg) => {
        let value: T | undefined;
        try {
          value = pick(msg);
        } catch (err) {
          clearTimeout(timer);
          off();
          reject(err);
          return;
        }
        if (value !== undefined) {
          clearTimeout(timer);
          off();
          resolve(value);
        }
      });
    });
  }
}
