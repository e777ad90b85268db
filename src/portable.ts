// Single mode without the native addon: macOS and Windows (where developers install an app's
// dependencies too), or a Linux where no prebuild fits and nothing can compile one. Node binds and
// serves; what needs the addon (hot and phased restarts, cluster mode, descriptor listings, the
// systemd protocol) is refused in one line. Production is Linux, with the addon: docs/install.md.
import * as fs from 'node:fs';
import { compatPorts, listenWaitMs, loadApp, publishPorts, resolveAppFile } from './app.js';
import { Lifecycle, SERVER_TRANSITIONS, type ServerState } from './lifecycle.js';
import * as native from './native.js';
import type { RunContext } from './run-context.js';
import { AppServer } from './server.js';
import { installSignalHandlers } from './signals.js';
import { type ControlAction, type ControlAnswer, lifetimeView, type Stats } from './status.js';
import { VERSION } from './version.js';

export async function runPortable(ctx: RunContext): Promise<void> {
  const { config, log, history } = ctx;
  const why = `needs nserve's native addon, which is unavailable: ${native.unavailableReason ?? 'unknown'}`;
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
  });
  const server = AppServer.forApp(app, config, log);
  const binds: string[] = [];
  for (const spec of config.binds) {
    const address = await server.listenOn(
      spec.uri,
      spec.kind === 'tcp' ? { host: spec.host, port: spec.port } : { path: spec.path },
    );
    if (typeof address === 'string') binds.push(`unix://${address}`);
    else if (address !== null)
      binds.push(
        address.family === 'IPv6'
          ? `tcp://[${address.address}]:${address.port}`
          : `tcp://${address.address}:${address.port}`,
      );
  }
  lifecycle.to('running', 'the app serves');
  log.warn(
    { code: 'ERR_NSERVE_NO_ADDON' },
    `serving without the native addon: hot and phased restarts ${why}`,
  );
  log.info(
    { version: VERSION, mode: 'single', app: app.file, directory, binds, addon: false },
    'nserve booted',
  );

  const stop = async (reason: string, timeoutMs: number): Promise<void> => {
    lifecycle.to('stopping', reason);
    log.info({ reason }, 'graceful stop: draining');
    server.beginDraining();
    server.stopAccepting();
    await server.drain(timeoutMs, config.longLivedGraceMs, 'stop');
    log.info({ requests: server.requests }, 'stopped');
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
