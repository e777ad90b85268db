// The control plane of one server process: control server + state file (+ pidfile).
import type { Config } from '../config.js';
import type { Logger } from '../logger.js';
import { claimServerFile, pidIn, removePidfile } from '../pidfile.js';
import { removeStateFile, STATE_FILE_MAX_BYTES, statePidIn, writeStateFile } from '../statefile.js';
import type { Controller } from '../status.js';
import { VERSION } from '../version.js';
import type { ControlConfig } from './api.js';
import { ControlServer } from './server.js';

export interface ControlPlane {
  /** The bound control server, if `--control-url` is set. */
  readonly server: ControlServer | undefined;
  /** Serve the control API and write the state file; called once the server serves (RunContext.onServing). */
  serve(controller: Controller): Promise<void>;
}

/**
 * Bind the control socket at once (so a busy or bad address fails before the app boots), serve it when the
 * server serves, and write the state file then. Both are removed when the process exits (a stop, a fatal
 * error); a hot restart's exec runs no exit handler, so the new image finds and replaces them.
 */
export function openControlPlane(config: Config, log: Logger, startedAt: string): ControlPlane {
  const control: ControlConfig | undefined = config.control;
  const stateFile = config.stateFile;
  // Fail now, before anything binds or the app boots: a directory that is not there, a file that is not
  // nserve's (replacing it would lose it), or a file that names a live server (a second server would take
  // it over, and delete it at its stop).
  if (config.pidfile !== undefined)
    claimServerFile(
      { flag: '--pidfile', file: config.pidfile, kind: 'a pidfile (no PID in it)', pidIn, maxBytes: 64 },
      log,
    );
  if (stateFile !== undefined)
    claimServerFile(
      {
        flag: '--state',
        file: stateFile,
        kind: 'an nserve state file',
        pidIn: statePidIn,
        maxBytes: STATE_FILE_MAX_BYTES,
      },
      log,
    );
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
        log.info(
          { url: server.url, auth: control?.token !== undefined, state: stateFile },
          'control server listening',
        );
      }
    },
  };
}
