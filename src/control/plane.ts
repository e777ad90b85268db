// The control plane of one server process: control server + state file (+ pidfile).
import type { Config } from '../config/index.js';
import { logEvent } from '../log/events.js';
import type { Logger } from '../log/logger.js';
import * as native from '../native/index.js';
import { checkServerFileDirectory, claimServerFile, removePidfile } from '../os/pidfile.js';
import { removeStateFile, writeStateFile } from '../os/state-file.js';
import type { HandedLock } from '../restart/handoff.js';
import { VERSION } from '../version.js';
import type { ControlConfig } from './api.js';
import { lockServerFiles, serverFiles } from './lock.js';
import { ControlServer } from './server.js';
import type { Controller } from './status.js';

export interface ControlPlane {
  /** The bound control server, if `--control-url` is set. */
  readonly server: ControlServer | undefined;
  /** The locks beside --pidfile and --state (control/lock.ts), carried across every hot restart. */
  readonly locks: readonly HandedLock[];
  /** Serve the control API and write the state file; called once the server serves (RunContext.onServing). */
  serve(controller: Controller): Promise<void>;
}

/**
 * Bind the control socket at once (so a busy or bad address fails before the app boots), serve it when the
 * server serves, and write the state file then. Both are removed when the process exits (a stop, a fatal
 * error); a hot restart's exec runs no exit handler, so the new image finds and replaces them.
 */
export function openControlPlane(
  config: Config,
  log: Logger,
  startedAt: string,
  /** The locks a hot restart's previous image handed over. */
  handedLocks?: readonly HandedLock[],
): ControlPlane {
  const control: ControlConfig | undefined = config.control;
  const stateFile = config.stateFile;
  const files = serverFiles(config);
  // Fail now, before anything binds or the app boots: a directory that is not there, a running server
  // that holds the lock beside a file (control/lock.ts), a file that is not nserve's (replacing it would
  // lose it), or a file that names a live server holding no lock (portable mode, an older nserve).
  for (const f of files) checkServerFileDirectory(f);
  const locks = native.available ? lockServerFiles(files, handedLocks, log) : [];
  for (const f of files) claimServerFile(f, log);
  const server =
    control === undefined
      ? undefined
      : ControlServer.bind({ address: control.address, token: control.token, log });
  process.once('exit', () => {
    server?.removeSocketFile();
    // Only what still names this process (a crashed start leaves nothing stale behind).
    if (stateFile !== undefined) removeStateFile(stateFile);
    if (config.pidfile !== undefined) removePidfile(config.pidfile);
  });
  return {
    server,
    locks,
    async serve(controller: Controller): Promise<void> {
      if (server !== undefined) await server.serve(controller);
      if (stateFile !== undefined) {
        writeStateFile(stateFile, {
          version: 1,
          pid: process.pid,
          ...(server === undefined ? {} : { controlUrl: server.url }),
          ...(control?.token === undefined ? {} : { controlToken: control.token }),
          startedAt,
          nserve: VERSION,
        });
      }
      if (server !== undefined) {
        // Logged last: once this line is out, the socket answers and the state file names it.
        logEvent(
          log,
          'control.server.listening',
          { url: server.url, auth: control?.token !== undefined, state: stateFile },
          'control server listening',
        );
      }
    },
  };
}
