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
import { compatPorts, listenWaitMs, loadApp, publishPorts, resolveAppFile } from '../app/index.js';
import { readyProbe } from '../app/probe.js';
import type { Config } from '../config/index.js';
import { formatControlUrl } from '../control/api.js';
import { type ControlAnswer, lifetimeView, type Stats } from '../control/status.js';
import { errorCode, errorMessage, NserveError, usageError } from '../errors.js';
import { type Capabilities, Launcher, type Runner, type RunnerAction } from '../launcher/index.js';
import type { RunContext } from '../launcher/run-context.js';
import { type BindSpec, formatAddress } from '../listen/bind-uri.js';
import { logEvent } from '../log/events.js';
import * as native from '../native/index.js';
import { AppServer } from '../server/index.js';
import { VERSION } from '../version.js';

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
  const { config, log } = ctx;
  const launcher = new Launcher(ctx, 'server');
  const directory = fs.realpathSync(config.directory);
  resolveAppFile(config.app, directory);
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
  logEvent(
    log,
    'addon.missing',
    { code: 'ERR_NSERVE_NO_ADDON' },
    `serving without the native addon: hot and phased restarts ${noAddonReason()}`,
  );
  launcher.announce(
    { mode: 'single', app: app.file, directory, binds, addon: false },
    'nserve booted',
    'the app serves',
    'single (portable): serving',
  );
  const runner = new PortableRunner(ctx, launcher, server, directory);
  launcher.attach(runner);
  await ctx.onServing?.(launcher);
}

/** Serving with Node's own listeners: no restarts, no workers; stops drain as single mode's do. */
class PortableRunner implements Runner {
  readonly capabilities: Capabilities = { has: new Set(), why: () => noAddonReason() };

  constructor(
    private readonly ctx: RunContext,
    private readonly launcher: Launcher,
    private readonly server: AppServer,
    private readonly directory: string,
  ) {}

  perform(action: RunnerAction): ControlAnswer {
    // Every runner action needs a capability portable mode lacks: the launcher refused it already.
    return { accepted: false, status: 409, reason: `${action} ${noAddonReason()}` };
  }

  unready(): void {
    this.server.unready();
  }

  async stopServing(how: 'stop' | 'halt'): Promise<{ requests: number }> {
    const { config, log } = this.ctx;
    const server = this.server;
    logEvent(log, 'stop.draining', { reason: how, inFlight: server.inFlight }, 'graceful stop: draining');
    server.beginDraining();
    // Closing Node's listener also removes a unix socket's file.
    server.stopAccepting();
    await server.drain(how === 'halt' ? 0 : config.shutdownTimeoutMs, config.longLivedGraceMs, 'stop', {
      afterMs: config.switchTimeoutMs,
      after: 'end',
    });
    return { requests: server.requests };
  }

  hurry(): void {
    void this.server.drain(0, 0, 'stop', { afterMs: 0, after: 'end' });
  }

  stats(): Stats {
    const { ctx, server } = this;
    return {
      version: VERSION,
      mode: 'single',
      pid: process.pid,
      startedAt: ctx.startedAt,
      phase: 0,
      state: this.launcher.state,
      requests: server.requests,
      inFlight: server.inFlight,
      longLived: server.longLivedOpen(),
      workers: [],
      restarts: ctx.history.records,
      lifetime: lifetimeView(ctx.history, server.requests),
      directory: this.directory,
      listeners: [],
      fdCount: 0,
    };
  }
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
