// What the command line hands to the role it picked (single server or cluster master).
import type { CliOptions, Config } from '../config/index.js';
import type { Controller } from '../control/status.js';
import type { Logger } from '../log/logger.js';
import type { MetricsPlane } from '../metrics/metrics-plane.js';
import type { RestartInfo } from '../restart/exec.js';
import type { HandedLock, Handoff } from '../restart/handoff.js';
import type { RestartHistory } from '../restart/history.js';

export interface RunContext {
  config: Config;
  /** The command line's APP and options, to read the config again as a new image would. */
  appArg: string | undefined;
  cliOptions: CliOptions;
  /** The config file this image read, resolved when it was read (pinned for an exec back). */
  configFileResolved: string | null;
  /** Single mode, optimistic hot restart: guards this image's boot until the new code serves. */
  guard?: { fail(reason: string): never; disarm(): void };
  log: Logger;
  restart: RestartInfo;
  history: RestartHistory;
  /** What the previous image handed over (a hot restart's exec), if any. */
  handoff: Handoff | undefined;
  /**
   * The new image could not read our hand-off and execed back (why): this image serves the release it
   * served before (`handoff.directory`) and the restart counts as abandoned.
   */
  rejected: string | undefined;
  /** Where the command line was given (logical path): restarts read it again from there. */
  launchCwd: string;
  /** When this server (PID) first started, across hot restarts. */
  startedAt: string;
  env: NodeJS.ProcessEnv;
  /** Descriptors of the control server's listening socket (labelled `control` by `nserve fds`). */
  controlFds?: readonly number[];
  /**
   * The lock files beside --pidfile and --state, held for the server's life (control/lock.ts; labelled
   * `lock` by `nserve fds`).
   */
  locks?: readonly HandedLock[];
  /** Metrics (a control server or --metrics-url is configured): the store and the dedicated listener. */
  metrics?: MetricsPlane;
  /** Called once the server serves, with what the control server needs. */
  onServing?: (controller: Controller) => void | Promise<void>;
}
