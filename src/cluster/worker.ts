// The worker side of cluster mode: load the app, tell the master, serve the slots it lends, check in,
// drain when told. A worker never binds: every listening socket it has was lent by the master.
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { runHooks } from '../app/hooks.js';
import { compatPorts, listenWaitMs, loadApp, resolveAppFile } from '../app/index.js';
import { runHeldStopListeners } from '../app/stop-signals.js';
import type { Config } from '../config/index.js';
import { errorCode, errorMessage, NserveError } from '../errors.js';
import { logEvent } from '../log/events.js';
import { deferredLogger } from '../log/logger.js';
import { REQUESTS } from '../metrics/requests.js';
import * as native from '../native/index.js';
import { PROTOCOL_VERSION, type WorkerIdentity } from '../restart/handoff.js';
import type { AppServer } from '../server/index.js';
import { Channel } from './channel.js';
import {
  clip,
  type FromWorker,
  HEARTBEAT_INTERVAL_MS,
  METRICS_CHUNK,
  METRICS_MAX_PARTS,
  type ToWorker,
} from './protocol.js';

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
  const { config, env } = ctx;
  const { index, generation: phase, channelFd } = ctx.identity;
  const directory = ctx.identity.directory ?? config.directory;
  // Made while the app loads (below), or at its first use if that comes sooner: not before the app.
  const { log, make: makeLog } = deferredLogger({
    level: config.logLevel,
    base: { role: 'worker', worker: index, phase },
  });
  // nserve's own exits: while the app loads, process.exit() is the app's, and throws (app/index.ts).
  const exit = process.exit.bind(process);
  // libuv handed us the channel without close-on-exec; a child the app spawns must not inherit it.
  native.setCloexec(channelFd, true);
  const workerHooks = (name: 'onWorkerBoot' | 'onWorkerShutdown') =>
    runHooks(name, config.hooks[name], { worker: index, phase }, config.hookTimeoutMs, log);

  let server: AppServer | undefined;
  // Counted only when something can scrape (--metrics-url or a control server), or when a phased
  // restart's canary is judged by its 5xx rate (cluster/canary.ts): metrics/requests.ts.
  REQUESTS.on = config.metrics || config.canaryMs !== undefined;
  const totals = (): { totals?: number[] } => (REQUESTS.on ? { totals: REQUESTS.snapshot() } : {});
  const held = new Map<string, number>();
  let draining = false;

  const exitWhenMasterGone = (): void => {
    logEvent(log, 'worker.master-gone', 'master is gone: stopping');
    const stopNow = async (): Promise<void> => {
      if (server !== undefined) {
        server.stopAccepting();
        await server.drain(500, 0, 'stop');
      }
      exit(1);
    };
    void stopNow();
  };

  const channel: Channel<ToWorker, FromWorker> = new Channel(channelFd, {
    // The master is trusted; what can go wrong here is our own descriptor limit (EMFILE drops the slot
    // descriptors of a message: MSG_CTRUNC). Say so, and the master sends them again.
    parse: (value) => value as ToWorker,
    invalid: (reason) => {
      logEvent(log, 'worker.message.lost', { reason }, `a message from the master was lost: ${reason}`);
      send({ t: 'lost' });
    },
    message: (msg, fds) => {
      switch (msg.t) {
        case 'slots':
          msg.slots.forEach((s, i) => {
            const fd = fds[i];
            if (fd !== undefined) held.set(s.key, fd);
          });
          void acceptOn(msg.slots.map((s) => s.key));
          break;
        case 'release':
          release(msg.keys);
          break;
        case 'notice':
          void notice(msg.graceMs);
          break;
        case 'unready':
          server?.unready();
          break;
        case 'drain':
          void drain(msg.longLivedGraceMs, msg.reason);
          break;
        case 'reload-certs':
          reloadCerts(msg.id);
          break;
        case 'metrics':
          void answerMetrics(msg.id);
          break;
      }
    },
    close: exitWhenMasterGone,
  });

  /** Tell the master; a send that fails (the master is gone, or a bug) must not take the worker down. */
  function send(msg: FromWorker): void {
    try {
      channel.send(msg);
    } catch (err) {
      logEvent(log, 'worker.send.failed', { err }, `cannot tell the master (${msg.t}): ${errorMessage(err)}`);
    }
  }

  const acceptOn = async (keys: string[]): Promise<void> => {
    if (server === undefined) return; // served once booted
    if (draining) {
      // Too late: decline, so the master lends these slots elsewhere instead of waiting for us.
      for (const key of keys) {
        const fd = held.get(key);
        held.delete(key);
        if (fd !== undefined) native.close(fd);
      }
      send({ t: 'released', keys });
      return;
    }
    for (const key of keys) {
      const fd = held.get(key);
      if (fd === undefined) continue;
      held.delete(key);
      await server.serve(key, fd);
    }
    send({ t: 'accepting', keys });
  };

  /** Re-read the ssl:// binds' files; still booting, the server will read them when it is made. */
  const reloadCerts = (id: number): void => {
    const binds = (server?.reloadCerts() ?? []).map((b) =>
      b.error === undefined ? b : { ...b, error: clip(b.error) },
    );
    for (const b of binds) {
      if (!b.ok)
        logEvent(
          log,
          'tls.reload.refused',
          { bind: b.uri },
          `reload-certs refused, the old certificate keeps serving: ${b.error}`,
        );
    }
    send({ t: 'certs', id, binds });
  };

  /** A scrape: prom-client is loaded on the first one (a worker nobody scrapes never pays for it). */
  const answerMetrics = async (id: number): Promise<void> => {
    try {
      const { chunked, workerReply } = await import('../metrics/worker-reply.js');
      const parts = chunked(await workerReply(server), METRICS_CHUNK, METRICS_MAX_PARTS);
      parts.forEach((text, part) => {
        send({ t: 'metrics', id, part, parts: parts.length, text });
      });
    } catch (err) {
      logEvent(
        log,
        'worker.metrics.failed',
        { err },
        `cannot answer a metrics request: ${errorMessage(err)}`,
      );
    }
  };

  const release = (keys: string[]): void => {
    if (server !== undefined) for (const key of keys) server.stopAccepting(key);
    send({ t: 'released', keys });
  };

  /** A hot restart's new workers booted: tell the app, give long-lived connections the grace, still serving. */
  const notice = async (graceMs: number): Promise<void> => {
    const s = server;
    if (s === undefined) {
      send({ t: 'quiet', open: 0 });
      return;
    }
    s.announce({ reason: 'restart', graceMs });
    await s.waitLongLived(graceMs);
    send({ t: 'quiet', open: s.longLivedOpen() });
  };

  const drain = async (longLivedGraceMs: number, reason: 'restart' | 'stop' | 'replace'): Promise<void> => {
    if (draining) return;
    draining = true;
    clearInterval(heartbeat);
    const s = server;
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
    send({ t: 'drained', forced: result.forced, requests: s?.requests ?? 0, ...totals() });
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
    await workerHooks('onWorkerShutdown');
    // The last report, once every response has ended (those that closed after `drained` included): the
    // master counts it as the totals of a process gone, and tells an exit without it (a crash) apart.
    beat({ final: true });
    // A message waiting for room (EAGAIN: the master has not read a send buffer's worth yet, a scrape's
    // answer being up to 16 chunks of 20 KB) would die with us: `drained` and the last totals lost.
    await channel.flush(1000);
    // A stop signal that reached this worker too (a group's): the app's own listeners run now, drained.
    await runHeldStopListeners(config.hookTimeoutMs);
    exit(0);
  };

  // SIGTERM/SIGINT to a worker (e.g. Ctrl-C reaching the whole process group): the master coordinates
  // the stop; a worker only drains when the master says so, or when the master is gone. A SIGTERM sent
  // to this worker alone asks the master to replace it (its slots move first, so none goes unserved),
  // but only once the master had time to say it is stopping: a group's SIGTERM reaches the master at the
  // same moment, and a worker that announced it was leaving would be replaced during the stop.
  process.on('SIGTERM', () => {
    if (channel.isClosed) void drain(config.longLivedGraceMs, 'stop');
    else
      setTimeout(() => {
        if (!draining && !channel.isClosed) send({ t: 'leaving', reason: 'received SIGTERM' });
      }, GROUP_SIGNAL_GRACE_MS).unref();
  });
  process.on('SIGINT', () => {});
  for (const sig of ['SIGUSR1', 'SIGUSR2', 'SIGTTIN', 'SIGTTOU', 'SIGHUP'] as const)
    process.on(sig, () => {});

  // An uncaught exception leaves the app in an unknown state, but killing the process would drop every
  // request in flight: ask the master to move our slots elsewhere and drain us.
  let failing = false;
  process.on('uncaughtException', (err) => {
    try {
      logEvent(
        log,
        'worker.uncaught-exception',
        { err },
        `uncaught exception in worker: draining and being replaced: ${errorMessage(err)}`,
      );
    } catch {
      // logging failed (disk full, a broken stdout): the hand-over below matters more
    }
    if (server === undefined) exit(1);
    if (failing) return;
    failing = true;
    send({ t: 'leaving', reason: clip(`uncaught exception: ${errorMessage(err)}`) });
  });

  try {
    resolveAppFile(config.app, directory);
    send({ t: 'configured' });
  } catch (err) {
    send({ t: 'boot-error', error: clip(errorMessage(err)) });
    exit(1);
  }

  if (ctx.identity.protocol !== PROTOCOL_VERSION) {
    // A master of another nserve version spawned us (a release that ships its own nserve): say so.
    const error = `the master speaks protocol ${ctx.identity.protocol}, this worker's nserve speaks ${PROTOCOL_VERSION}`;
    logEvent(log, 'worker.boot.failed', { code: 'ERR_NSERVE_WORKER_BOOT' }, `worker cannot boot: ${error}`);
    send({ t: 'boot-error', error });
    exit(1);
  }

  // The histogram records whole timer intervals (≥ the resolution): the delay is what exceeds it.
  const ELD_RESOLUTION_MS = 20;
  const eld = monitorEventLoopDelay({ resolution: ELD_RESOLUTION_MS });
  eld.enable();
  let rss = 0;
  const beat = (options: { final?: true } = {}): void => {
    try {
      rss = process.memoryUsage.rss();
    } catch {
      // EMFILE (it reads /proc): keep the last figure; serving matters more than the stat
    }
    send({
      t: 'heartbeat',
      requests: server?.requests ?? 0,
      inFlight: server?.inFlight ?? 0,
      eventLoopDelayMs: Math.round(Math.max(0, eld.percentile(99) - ELD_RESOLUTION_MS * 1e6) / 1e4) / 100,
      rss,
      longLived: server?.longLivedOpen() ?? 0,
      connections: server?.connectionCount() ?? 0,
      ...totals(),
      ...options,
    });
    eld.reset();
  };
  const heartbeat = setInterval(() => beat(), HEARTBEAT_INTERVAL_MS);

  try {
    process.chdir(directory);
    const configured = config.binds.flatMap((b) => (b.kind === 'tcp' ? [b.port] : []));
    // The app's first line runs as soon as it can: what serving it needs (the HTTP server's modules,
    // pino) loads beside it, mostly while the app waits on its own I/O and timers.
    const loading = loadApp(config.app, directory, {
      ports: compatPorts(configured, env),
      listenWaitMs: listenWaitMs(config),
      args: config.args,
    });
    const serving = import('../server/index.js').then((mod) => {
      makeLog();
      return mod;
    });
    const [app, { AppServer }] = await Promise.all([loading, serving]);
    server = AppServer.forApp(app, config, log);
    await workerHooks('onWorkerBoot');
    if (config.readyProbe !== undefined) {
      // One real request through the app, privately, before the master may give us a slot.
      const { readyProbe } = await import('../app/probe.js');
      const failed = await readyProbe(server, config.readyProbe, config.readyProbeTimeoutMs);
      if (failed !== undefined) throw new NserveError('ERR_NSERVE_READY_PROBE', failed);
    }
    logEvent(log, 'worker.booted', { app: app.file, directory }, 'worker booted');
    send({ t: 'booted', file: app.file, directory });
    // Slots that arrived while we were booting.
    if (held.size > 0) await acceptOn([...held.keys()]);
  } catch (err) {
    // The app's own failure (bad input) is reported once, by the master; anything else is ours to log.
    if (err instanceof NserveError && err.usage)
      logEvent(log, 'worker.boot.invalid', { err }, 'worker failed to boot');
    else logEvent(log, 'worker.boot.failed', { err }, `worker failed to boot: ${errorMessage(err)}`);
    const code = errorCode(err);
    send({ t: 'boot-error', error: clip(errorMessage(err)), ...(code === undefined ? {} : { code }) });
    await channel.flush(1000);
    exit(1);
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
