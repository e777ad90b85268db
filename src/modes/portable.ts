// Single mode without the native addon: macOS and Windows (where developers install an app's
// dependencies too), or a Linux where no prebuild fits and nothing can compile one. Node binds and
// serves; what needs the addon (hot and phased restarts, cluster mode, descriptor listings, the
// systemd protocol, the control server) is refused in one line. Production is Linux, with the addon:
// docs/install.md.
//
// What single mode does around serving, portable mode does too: it binds exactly the bind's host (or
// the unix socket's path and mode), runs the ready probe before it serves, writes and removes the
// pidfile, runs onBooted, serves on through --shutdown-delay, and drains at a stop.
import * as fs from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { runHooks } from '../app/hooks.js';
import { compatPorts, listenWaitMs, loadApp, publishPorts, resolveAppFile } from '../app/index.js';
import { readyProbe } from '../app/probe.js';
import { runHeldStopListeners } from '../app/stop-signals.js';
import type { Config } from '../config/index.js';
import { formatControlUrl } from '../control/api.js';
import { installSignalHandlers } from '../control/signals.js';
import { type ControlAction, type ControlAnswer, lifetimeView, type Stats } from '../control/status.js';
import { errorCode, errorMessage, NserveError, usageError } from '../errors.js';
import { type BindSpec, formatAddress } from '../listen/bind-uri.js';
import * as native from '../native/index.js';
import { recordPid, removePidfile } from '../os/pidfile.js';
import { AppServer } from '../server/index.js';
import { VERSION } from '../version.js';
import { Lifecycle, SERVER_TRANSITIONS, type ServerState } from '../launcher/lifecycle.js';
import type { RunContext } from '../launcher/run-context.js';

/** Why a feature cannot run here, in the words every refusal uses. */
export function noAddonReason(): string {
  return `needs nserve's native addon, which is unavailable: ${native.unavailableReason ?? 'unknown'}`;
}

/**
 * What portable mode cannot do, refused in one line before anything binds: cluster mode, and the
 * control server and metrics listener (the addon binds them, so that they survive a hot restart).
 */
export function refuseWithoutAddon(config: Config): void {
  const refuse = (what: string, instead: string): never => {
    throw usageError('ERR_NSERVE_NO_ADDON', `${what} ${noAddonReason()}; ${instead}`);
  };
  if (config.workers > 0) refuse(`cluster mode (-w ${config.workers})`, 'run single mode (-w 0)');
  if (config.control !== undefined)
    refuse(
      `the control server (--control-url ${formatControlUrl(config.control.address)})`,
      'stop the server with SIGTERM (or SIGINT) instead',
    );
  if (config.metricsUrl !== undefined)
    refuse(`the metrics listener (--metrics-url)`, 'leave --metrics-url unset');
}

export async function runPortable(ctx: RunContext): Promise<void> {
  const { config, log, history } = ctx;
  const why = noAddonReason();
  const directory = fs.realpathSync(config.directory);
  resolveAppFile(config.app, directory);
  const lifecycle = new Lifecycle<ServerState>('server', 'booting', SERVER_TRANSITIONS, log);
  process.chdir(directory);
  // Node binds after the app loaded: an ephemeral port (0) is not known to the app as $PORT here.
  const ports = config.binds.flatMap((b) => (b.kind === 'tcp' && b.port > 0 ? [b.port] : []));
  publishPorts(ports);
  const app = await loadApp(config.app, directory, {
    ports: compatPorts(ports, process.env),
    listenWaitMs: listenWaitMs(config),
    args: config.args,
  });
  const server = AppServer.forApp(app, config, log);
  if (config.readyProbe !== undefined) {
    // One real request through the app, privately, before any client reaches it (as single mode does).
    const failed = await readyProbe(server, config.readyProbe, config.readyProbeTimeoutMs);
    if (failed !== undefined) throw new NserveError('ERR_NSERVE_READY_PROBE', failed, { usage: true });
  }
  const binds: string[] = [];
  for (const spec of config.binds) binds.push(await listenPortable(server, spec));
  if (config.pidfile !== undefined) recordPid(config.pidfile, log);
  lifecycle.to('running', 'the app serves');
  log.warn(
    { code: 'ERR_NSERVE_NO_ADDON' },
    `serving without the native addon: hot and phased restarts ${why}`,
  );
  log.info(
    { version: VERSION, mode: 'single', app: app.file, directory, binds, addon: false },
    'nserve booted',
  );
  void runHooks('onBooted', config.hooks.onBooted, {}, config.hookTimeoutMs, log);

  const stop = async (reason: string, timeoutMs: number): Promise<void> => {
    lifecycle.to('stopping', reason);
    if (timeoutMs > 0 && config.shutdownDelayMs > 0) {
      // Kubernetes keeps routing to a pod for a while after SIGTERM: serve on, health answering 503.
      server.unready();
      log.info(
        { delayMs: config.shutdownDelayMs },
        `graceful stop: serving ${config.shutdownDelayMs} ms more (--shutdown-delay)`,
      );
      await sleep(config.shutdownDelayMs);
    }
    log.info({ reason, inFlight: server.inFlight }, 'graceful stop: draining');
    server.beginDraining();
    // Closing Node's listener also removes a unix socket's file.
    server.stopAccepting();
    await server.drain(timeoutMs, config.longLivedGraceMs, 'stop', {
      afterMs: config.switchTimeoutMs,
      after: 'end',
    });
    if (config.pidfile !== undefined) removePidfile(config.pidfile);
    log.info({ requests: server.requests }, 'stopped');
    // A stop signal the app listens for itself (Next.js exits at once on it): its listeners run now.
    await runHeldStopListeners(config.hookTimeoutMs);
    process.exit(0);
  };
  const perform = (action: ControlAction): ControlAnswer => {
    switch (action) {
      case 'stop':
      case 'halt':
        if (!lifecycle.is('running')) return { accepted: false, status: 409, reason: 'already stopping' };
        void stop(action, action === 'halt' ? 0 : config.shutdownTimeoutMs);
        return { accepted: true };
      case 'restart':
      case 'phased-restart':
      case 'rollback':
        return { accepted: false, status: 409, reason: `a hot restart ${why}` };
      default:
        return { accepted: false, status: 409, reason: `${action} needs cluster mode, which ${why}` };
    }
  };
  const stats = (): Stats => ({
    version: VERSION,
    mode: 'single',
    pid: process.pid,
    startedAt: ctx.startedAt,
    phase: 0,
    state: lifecycle.state,
    requests: server.requests,
    inFlight: server.inFlight,
    longLived: server.longLivedOpen(),
    workers: [],
    restarts: history.records,
    lifetime: lifetimeView(history, server.requests),
    directory,
    listeners: [],
    fdCount: 0,
  });
  installSignalHandlers((action, signal) => {
    const answer = perform(action);
    if (!answer.accepted) log.warn({ signal }, `${signal} ignored: ${answer.reason}`);
  }, log);
  await ctx.onServing?.({ stats, perform });
}

/** Bind one bind URI with Node's own listener, exactly where it says; returns what was really bound. */
async function listenPortable(server: AppServer, spec: BindSpec): Promise<string> {
  let address: Awaited<ReturnType<AppServer['listenOn']>>;
  try {
    if (spec.kind === 'tcp') {
      address = await server.listenOn(spec.uri, {
        host: spec.host,
        port: spec.port,
        ipv6Only: spec.family === 'tcp6',
      });
    } else {
      // The socket file is created by bind(), inside listen(), synchronously: a umask for that call
      // gives it the bind's mode from the start (a chmod after would leave a window with the default).
      const umask = spec.mode === undefined ? undefined : process.umask(0o777 & ~spec.mode);
      const listening = server.listenOn(spec.uri, { path: spec.path });
      if (umask !== undefined) process.umask(umask);
      address = await listening;
    }
  } catch (err) {
    if (errorCode(err) === 'EADDRINUSE')
      throw usageError('ERR_NSERVE_ADDRESS_IN_USE', `bind ${spec.uri} is in use (another server?)`, err);
    throw usageError('ERR_NSERVE_BIND', `cannot listen on ${spec.uri}: ${errorMessage(err)}`, err);
  }
  if (typeof address === 'string') return `unix://${address}`;
  if (address === null) return spec.uri;
  return formatAddress({
    family: address.family === 'IPv6' ? 'IPv6' : 'IPv4',
    address: address.address,
    port: address.port,
  });
}
