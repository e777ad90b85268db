// The boot-check child (NSERVE_BOOT_CHECK=app|config): loads the new release's config (and app) in a
// separate process before a hot restart execs into it, and reports ok or the error to its parent.
import * as fs from 'node:fs';
import { compatPorts, listenWaitMs, loadApp, resolveAppFile } from '../app/index.js';
import { applyEnvFile } from '../config/env-file.js';
import type { Config } from '../config/index.js';
import { errorMessage, NserveError } from '../errors.js';
import { createLogger } from '../log/logger.js';
import type { BootCheckWhat } from '../restart/handoff.js';

export async function bootCheckChild(
  load: () => Promise<Config>,
  what: BootCheckWhat,
  /** A rollback's pinned release, checked instead of --directory's. */
  directory?: string,
): Promise<void> {
  const send = (msg: object): Promise<void> =>
    new Promise((resolve) => {
      if (process.send === undefined) resolve();
      else process.send(msg, () => resolve());
    });
  try {
    // A config file that no longer loads must be reported like an app that does not.
    const config = await load();
    if (config.environment !== undefined) process.env.NODE_ENV = config.environment;
    const dir = directory ?? fs.realpathSync(config.directory);
    process.chdir(dir);
    // The new code boots with the new release's env file (a missing one fails the check).
    if (config.envFile !== undefined) applyEnvFile(config.envFile, dir);
    if (what === 'config') {
      // Cluster hot restart: the new master must be able to start; the new workers' boot is checked
      // by booting them while the old ones serve.
      await send({ ok: true, file: resolveAppFile(config.app, dir) });
      process.exit(0);
    }
    const configured = config.binds.flatMap((b) => (b.kind === 'tcp' ? [b.port] : []));
    // The server holds the ports: an app that listens itself must be captured here too, not bound.
    const loaded = await loadApp(config.app, dir, {
      ports: compatPorts(configured, process.env),
      listenWaitMs: listenWaitMs(config),
      args: config.args,
    });
    if (config.readyProbe !== undefined) {
      const { AppServer } = await import('../server/index.js');
      const { readyProbe } = await import('../app/probe.js');
      const server = AppServer.forApp(loaded, config, createLogger({ level: 'silent', base: {} }));
      const failed = await readyProbe(server, config.readyProbe, config.readyProbeTimeoutMs);
      if (failed !== undefined) throw new NserveError('ERR_NSERVE_READY_PROBE', failed);
    }
    await send({ ok: true, file: loaded.file });
  } catch (err) {
    await send({ ok: false, error: errorMessage(err) });
    process.exit(1);
  }
  // The app may have opened connections or timers at load: don't wait for them.
  process.exit(0);
}
