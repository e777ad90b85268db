// The worker side of cluster mode: load the app, tell the master, serve the slots it lends, check in,
// drain when told. A worker never binds: every listening socket it has was lent by the master.
//
// `runWorker` wires a `Worker`: its channel to the master (messages below), its signals, its check-ins
// (worker-heartbeat.ts), then the boot: the app's first line runs as soon as it can, with what serving
// needs loading beside it.
import { runHooks } from '../app/hooks.js';
import { compatPorts, listenWaitMs, loadApp, resolveAppFile } from '../app/index.js';
import { runHeldStopListeners } from '../app/stop-signals.js';
import type { Config } from '../config/index.js';
import { errorCode, errorMessage, NserveError } from '../errors.js';
import { logEvent } from '../log/events.js';
import { deferredLogger, type Logger } from '../log/logger.js';
import { REQUESTS } from '../metrics/requests.js';
import * as native from '../native/index.js';
import { PROTOCOL_VERSION, type WorkerIdentity } from '../restart/handoff.js';
import type { AppServer } from '../server/index.js';
import { Channel } from './channel.js';
import { clip, type FromWorker, type ToWorker } from './protocol.js';
import { Heartbeat } from './worker-heartbeat.js';
import { type ReplyingWorker, WorkerReplies } from './worker-replies.js';

/**
 * How long a worker that got SIGTERM waits for its master's word before it asks to be replaced: a
 * group's SIGTERM (systemd's KillMode=control-group, kill -TERM -PGID) reaches the master at the same
 * moment, and then the master's stop drains this worker instead.
 */
const GROUP_SIGNAL_GRACE_MS = 300;

export interface WorkerContext {
  config: Config;
  env: NodeJS.ProcessEnv;
  identity: WorkerIdentity;
}

export async function runWorker(ctx: WorkerContext): Promise<void> {
  const worker = new Worker(ctx);
  worker.installSignalHandlers();
  worker.checkConfigured();
  worker.heartbeat.start();
  await worker.boot();
}

class Worker implements ReplyingWorker {
  readonly config: Config;
  /** Made while the app loads (boot), or at its first use if that comes sooner: not before the app. */
  readonly log: Logger;
  private readonly makeLog: () => Logger;
  /** nserve's own exits: while the app loads, process.exit() is the app's, and throws (app/index.ts). */
  private readonly exit = process.exit.bind(process);
  private readonly index: number;
  private readonly phase: number;
  private readonly directory: string;
  readonly channel: Channel<ToWorker, FromWorker>;
  readonly heartbeat: Heartbeat;
  server: AppServer | undefined;
  readonly replies: WorkerReplies = new WorkerReplies(this);
  draining = false;
  private failing = false;

  constructor(private readonly ctx: WorkerContext) {
    const { config, identity } = ctx;
    this.config = config;
    this.index = identity.index;
    this.phase = identity.generation;
    this.directory = identity.directory ?? config.directory;
    const { log, make } = deferredLogger({
      level: config.logLevel,
      base: { role: 'worker', worker: this.index, phase: this.phase },
    });
    this.log = log;
    this.makeLog = make;
    // libuv handed us the channel without close-on-exec; a child the app spawns must not inherit it.
    native.setCloexec(identity.channelFd, true);
    // Counted only when something can scrape (--metrics-url or a control server), or when a phased
    // restart's canary is judged by its 5xx rate (cluster/canary.ts): metrics/requests.ts.
    REQUESTS.on = config.metrics || config.canaryMs !== undefined;
    this.channel = new Channel(identity.channelFd, {
      // The master is trusted; what can go wrong here is our own descriptor limit (EMFILE drops the slot
      // descriptors of a message: MSG_CTRUNC). Say so, and the master sends them again.
      parse: (value) => value as ToWorker,
      invalid: (reason) => {
        logEvent(
          this.log,
          'worker.message.lost',
          { reason },
          `a message from the master was lost: ${reason}`,
        );
        this.send({ t: 'lost' });
      },
      message: (msg, fds) => this.onMessage(msg, fds),
      close: () => this.exitWhenMasterGone(),
    });
    this.heartbeat = new Heartbeat(
      () => this.server,
      (msg) => this.send(msg),
    );
  }

  private onMessage(msg: ToWorker, fds: readonly number[]): void {
    switch (msg.t) {
      case 'slots':
        this.replies.lend(
          msg.slots.map((s) => s.key),
          fds,
        );
        break;
      case 'release':
        this.replies.release(msg.keys);
        break;
      case 'notice':
        void this.notice(msg.graceMs);
        break;
      case 'unready':
        this.server?.unready();
        break;
      case 'drain':
        void this.drain(msg.longLivedGraceMs, msg.reason);
        break;
      case 'reload-certs':
        this.replies.reloadCerts(msg.id);
        break;
      case 'metrics':
        void this.replies.answerMetrics(msg.id);
        break;
    }
  }

  /** Tell the master; a send that fails (the master is gone, or a bug) must not take the worker down. */
  send(msg: FromWorker): void {
    try {
      this.channel.send(msg);
    } catch (err) {
      logEvent(
        this.log,
        'worker.send.failed',
        { err },
        `cannot tell the master (${msg.t}): ${errorMessage(err)}`,
      );
    }
  }

  private runWorkerHooks(name: 'onWorkerBoot' | 'onWorkerShutdown'): Promise<unknown> {
    const { config } = this;
    return runHooks(
      name,
      config.hooks[name],
      { worker: this.index, phase: this.phase },
      config.hookTimeoutMs,
      this.log,
    );
  }

  private exitWhenMasterGone(): void {
    logEvent(this.log, 'worker.master-gone', 'master is gone: stopping');
    const stopNow = async (): Promise<void> => {
      if (this.server !== undefined) {
        this.server.stopAccepting();
        await this.server.drain(500, 0, 'stop');
      }
      this.exit(1);
    };
    void stopNow();
  }

  /** A hot restart's new workers booted: tell the app, give long-lived connections the grace, still serving. */
  private async notice(graceMs: number): Promise<void> {
    const s = this.server;
    if (s === undefined) {
      this.send({ t: 'quiet', open: 0 });
      return;
    }
    s.announce({ reason: 'restart', graceMs });
    await s.waitLongLived(graceMs);
    this.send({ t: 'quiet', open: s.longLivedOpen() });
  }

  /**
   * Drain and exit: stop accepting, let requests finish (long-lived connections get their grace), tell
   * the master, run the shutdown hooks, send the last report, run the app's held stop listeners.
   */
  async drain(longLivedGraceMs: number, reason: 'restart' | 'stop' | 'replace'): Promise<void> {
    if (this.draining) return;
    this.draining = true;
    this.heartbeat.stop();
    const { config, log } = this;
    const s = this.server;
    const started = Date.now();
    let result = { forced: 0, asked: 0, closedThemselves: 0, ended: 0, longPolls: 0 };
    if (s !== undefined) {
      s.beginDraining();
      // A stop: the master has closed its copies of the slots; we take over what is queued on ours and
      // close them, so queued connections are served and later ones refused, never reset. Otherwise the
      // slots live on (with the master and the other workers): stop accepting at once.
      if (reason === 'stop') s.closeListenersServingQueued();
      else s.stopAccepting();
      // A stop has no new code to switch to: its long-polls are answered for the client to poll again.
      result = await s.drain(config.shutdownTimeoutMs, longLivedGraceMs, reason, {
        afterMs: config.switchTimeoutMs,
        after: reason === 'stop' ? 'end' : 'finish-on-old',
        // Not the drain message's grace (0 in a cluster hot restart: long-lived connections had theirs).
        finishMs: config.longLivedGraceMs,
      });
    }
    // Tell the master first: we will never serve again, and it may hand over (cluster hot restart)
    // while responses that may finish on old code, and our shutdown hooks, still run.
    this.send({
      t: 'drained',
      forced: result.forced,
      requests: s?.requests ?? 0,
      ...this.heartbeat.totals(),
    });
    const { describeLongLived } = await import('../server/drain.js');
    logEvent(
      log,
      'drain.done',
      {
        requests: s?.requests ?? 0,
        ...result,
        longLived: { asked: result.asked, closedThemselves: result.closedThemselves, ended: result.ended },
        longPolls: result.longPolls,
      },
      `worker drained: ${describeLongLived(result)}`,
    );
    if (s !== undefined) {
      const cut = await s.finishOnOld(Math.max(0, config.shutdownTimeoutMs - (Date.now() - started)));
      if (cut > 0)
        logEvent(
          log,
          'drain.cut',
          { cut },
          `shutdown timeout: ${cut} response(s) marked to finish on old code were cut`,
        );
    }
    await this.runWorkerHooks('onWorkerShutdown');
    // The last report, once every response has ended (those that closed after `drained` included): the
    // master counts it as the totals of a process gone, and tells an exit without it (a crash) apart.
    this.heartbeat.beat({ final: true });
    // A message waiting for room (EAGAIN: the master has not read a send buffer's worth yet, a scrape's
    // answer being up to 16 chunks of 20 KB) would die with us: `drained` and the last totals lost.
    await this.channel.flush(1000);
    // A stop signal that reached this worker too (a group's): the app's own listeners run now, drained.
    await runHeldStopListeners(config.hookTimeoutMs);
    this.exit(0);
  }

  /**
   * SIGTERM/SIGINT to a worker (e.g. Ctrl-C reaching the whole process group): the master coordinates the
   * stop; a worker only drains when the master says so, or when the master is gone. A SIGTERM sent to
   * this worker alone asks the master to replace it (its slots move first, so none goes unserved), but
   * only once the master had time to say it is stopping: a group's SIGTERM reaches the master at the same
   * moment, and a worker that announced it was leaving would be replaced during the stop.
   */
  installSignalHandlers(): void {
    process.on('SIGTERM', () => {
      if (this.channel.isClosed) void this.drain(this.config.longLivedGraceMs, 'stop');
      else
        setTimeout(() => {
          if (!this.draining && !this.channel.isClosed)
            this.send({ t: 'leaving', reason: 'received SIGTERM' });
        }, GROUP_SIGNAL_GRACE_MS).unref();
    });
    process.on('SIGINT', () => {});
    for (const sig of ['SIGUSR1', 'SIGUSR2', 'SIGTTIN', 'SIGTTOU', 'SIGHUP'] as const)
      process.on(sig, () => {});
    // An uncaught exception leaves the app in an unknown state, but killing the process would drop every
    // request in flight: ask the master to move our slots elsewhere and drain us.
    process.on('uncaughtException', (err) => this.onUncaught(err));
  }

  private onUncaught(err: unknown): void {
    try {
      logEvent(
        this.log,
        'worker.uncaught-exception',
        { err },
        `uncaught exception in worker: draining and being replaced: ${errorMessage(err)}`,
      );
    } catch {
      // logging failed (disk full, a broken stdout): the hand-over below matters more
    }
    if (this.server === undefined) this.exit(1);
    if (this.failing) return;
    this.failing = true;
    this.send({ t: 'leaving', reason: clip(`uncaught exception: ${errorMessage(err)}`) });
  }

  /** The config read and the app file found (the master's exec waits for this), and our protocol spoken. */
  checkConfigured(): void {
    try {
      resolveAppFile(this.config.app, this.directory);
      this.send({ t: 'configured' });
    } catch (err) {
      this.send({ t: 'boot-error', error: clip(errorMessage(err)) });
      this.exit(1);
    }
    const protocol = this.ctx.identity.protocol;
    if (protocol !== PROTOCOL_VERSION) {
      // A master of another nserve version spawned us (a release that ships its own nserve): say so.
      const error = `the master speaks protocol ${protocol}, this worker's nserve speaks ${PROTOCOL_VERSION}`;
      logEvent(
        this.log,
        'worker.boot.failed',
        { code: 'ERR_NSERVE_WORKER_BOOT' },
        `worker cannot boot: ${error}`,
      );
      this.send({ t: 'boot-error', error });
      this.exit(1);
    }
  }

  /** Load the app (and what serves it, beside it), run onWorkerBoot and the ready probe, then serve. */
  async boot(): Promise<void> {
    const { config, log, directory } = this;
    try {
      process.chdir(directory);
      const configured = config.binds.flatMap((b) => (b.kind === 'tcp' ? [b.port] : []));
      // The app's first line runs as soon as it can: what serving it needs (the HTTP server's modules,
      // pino) loads beside it, mostly while the app waits on its own I/O and timers.
      const loading = loadApp(config.app, directory, {
        ports: compatPorts(configured, this.ctx.env),
        listenWaitMs: listenWaitMs(config),
        args: config.args,
      });
      const serving = import('../server/index.js').then((mod) => {
        this.makeLog();
        return mod;
      });
      const [app, { AppServer }] = await Promise.all([loading, serving]);
      this.server = AppServer.forApp(app, config, log);
      await this.runWorkerHooks('onWorkerBoot');
      if (config.readyProbe !== undefined) {
        // One real request through the app, privately, before the master may give us a slot.
        const { readyProbe } = await import('../app/probe.js');
        const failed = await readyProbe(this.server, config.readyProbe, config.readyProbeTimeoutMs);
        if (failed !== undefined) throw new NserveError('ERR_NSERVE_READY_PROBE', failed);
      }
      logEvent(log, 'worker.booted', { app: app.file, directory }, 'worker booted');
      this.send({ t: 'booted', file: app.file, directory });
      // Slots that arrived while we were booting.
      if (this.replies.held.size > 0) await this.replies.acceptOn([...this.replies.held.keys()]);
    } catch (err) {
      // The app's own failure (bad input) is reported once, by the master; anything else is ours to log.
      if (err instanceof NserveError && err.usage)
        logEvent(log, 'worker.boot.invalid', { err }, 'worker failed to boot');
      else logEvent(log, 'worker.boot.failed', { err }, `worker failed to boot: ${errorMessage(err)}`);
      const code = errorCode(err);
      this.send({ t: 'boot-error', error: clip(errorMessage(err)), ...(code === undefined ? {} : { code }) });
      await this.channel.flush(1000);
      this.exit(1);
    }
  }
}

/**
 * A worker whose config does not load has no channel object yet: say why over its descriptor directly,
 * so that the master (a cluster hot restart's veto) can report the reason, not only an exit status.
 */
export function reportEarlyBootError(channelFd: number, error: string): void {
  try {
    native.sendFds(channelFd, [], Buffer.from(JSON.stringify({ t: 'boot-error', error: clip(error) })));
  } catch {
    // the master is gone or not listening: the exit status says the rest
  }
}
