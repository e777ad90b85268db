// The events nserve logs: one table, the interface operators alert on and tests assert on. Every line
// nserve itself writes carries one of these codes in its `event` field; its message may be reworded,
// its code may not (add a new code instead). The app's own output (--tag-output lines, with a `stream`
// field) is the app's, and carries none. docs/operating.md's list is generated from this table
// (renderEventsDoc; a unit test keeps the two in step).
import type { Logger } from 'pino';

export type EventLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug';

/** `code: [level, what it means for an operator]`, grouped by room. Codes are `room.thing.verb`. */
// biome-ignore format: one line per event, a table to read down
export const EVENTS = {
  // boot and stop
  'server.booted': ['info', 'The server booted and serves (single, portable or cluster mode): version, mode, binds, pids.'],
  'server.boot.failed': ['fatal', 'Cluster mode: the workers failed to boot at start; the master exits 1.'],
  'server.stopped': ['info', 'A graceful stop finished; the process exits 0.'],
  'server.stop.failed': ['fatal', 'A stop failed unexpectedly (a bug): the process exits 1 instead of staying in stopping.'],
  'state.changed': ['info', 'The server or master moved between states (booting, running, restarting, stopping): from, to, reason.'],
  'worker.state.changed': ['debug', "The master's view of a worker changed state (booting, booted, draining, exited)."],
  'stop.delay.started': ['info', 'A graceful stop keeps serving for --shutdown-delay before it drains.'],
  'stop.draining': ['info', 'A graceful stop began: accepts stop, in-flight requests finish.'],
  'stop.halt': ['warn', 'halt: the workers are killed without draining.'],
  'stop.during-restart': ['info', 'A stop came during a restart: the restart is cancelled, then the server stops.'],
  'drain.done': ['info', 'A process drained: its requests finished, long-lived connections were asked to close or ended.'],
  'drain.forced': ['warn', 'The shutdown timeout was reached: connections still open were closed.'],
  'drain.cut': ['warn', 'The shutdown timeout was reached: responses marked to finish on old code were cut.'],
  'config.worker-only.ignored': ['warn', 'Settings that apply to cluster mode only were given in single mode.'],
  'env-file.applied': ['info', 'The --dotenv file of the release changed or removed environment variables.'],
  'addon.missing': ['warn', 'Portable mode: serving without the native addon, so without restarts.'],
  'process.uncaught-exception': ['fatal', "Single or portable mode: an uncaught exception (the app's, mostly): the server exits 1 (ERR_NSERVE_UNCAUGHT)."],
  'master.error': ['error', 'An unexpected error in the master; a restart in progress is ended.'],
  'master.bug': ['error', 'A bug in the master (ERR_NSERVE_MASTER_BUG); the slots are kept open.'],
  // hot restart (SIGUSR2)
  'restart.hot.started': ['info', 'A hot restart began (in cluster mode: of the master image, adopting its workers).'],
  'restart.hot.draining': ['info', 'Single mode: the new code boots (or no check was asked for): the old code drains.'],
  'restart.hot.exec': ['info', 'The process re-execs itself in place (same PID), keeping its sockets.'],
  'restart.hot.adopted': ['info', 'Cluster mode: the new master image adopted the serving workers and boots new ones.'],
  'restart.hot.done': ['info', 'A hot restart finished: new code serves (restartMs, pauseMs).'],
  'restart.hot.abandoned': ['error', 'A hot restart was abandoned (new code fails to boot, exec failed, …): old code keeps serving.'],
  'restart.hot.refused': ['error', 'A hot restart was refused: a descriptor would leak (--leak-policy refuse), or its new workers do not fit in the memory limit (ERR_NSERVE_RESTART_NO_FIT); old code keeps serving.'],
  'restart.hot.cancelled': ['info', 'A hot restart was cancelled by a stop.'],
  'restart.hot.crashed': ['fatal', 'A hot restart failed unexpectedly; the process exits 1.'],
  'restart.boot-check.started': ['debug', 'The short-lived process that checks the new code boots was started.'],
  'restart.memory.fits': ['info', 'A cluster hot restart fits in the memory limit: every new worker boots beside the old ones.'],
  'restart.memory.overflow': ['warn', 'A cluster hot restart does not fit in the memory limit: it runs staged or phased (--restart-overflow), the numbers in the fields.'],
  'restart.memory.concurrency-lowered': ['warn', 'A phased restart replaces fewer workers at a time than --phase-concurrency: only that many fit in the memory limit.'],
  'restart.staged.rest': ['info', 'A staged hot restart booted the remaining new workers once the old ones had drained.'],
  'restart.staged.worker-failed': ['error', 'A staged hot restart: a remaining new worker failed to boot; it is replaced like a crashed worker.'],
  'restart.phased.refused': ['error', 'A phased restart was refused: not even one new worker fits in the memory limit (ERR_NSERVE_RESTART_NO_FIT); old workers keep serving.'],
  // phased restart (SIGUSR1), canary, rollback
  'restart.phased.started': ['info', 'A phased restart began: workers are replaced one group at a time.'],
  'restart.phased.worker-replaced': ['info', 'A phased restart replaced one worker (bootedMs, ms).'],
  'restart.phased.done': ['info', 'A phased restart finished: every worker runs the new release.'],
  'restart.phased.stopped': ['error', 'A phased restart stopped (a worker failed to boot, or the canary failed): the others keep serving.'],
  'restart.phased.downgraded': ['warn', 'A phased restart was asked for in single mode: a hot restart is done instead.'],
  'canary.started': ['info', 'The canary worker serves for --canary before the rollout goes on.'],
  'canary.passed': ['info', 'The canary did no worse than the old workers: the rollout goes on.'],
  'canary.inconclusive': ['warn', 'The canary saw too little traffic to judge: the rollout goes on.'],
  'canary.failed': ['error', 'The canary did worse than the old workers: the rollout stops and rolls back.'],
  'canary.no-way-back': ['error', 'The previous release cannot be brought back (not on disk, no worker left running it).'],
  'canary.rollback.boot-failed': ['error', 'A worker of the previous release, brought back after a failed canary, failed to boot.'],
  'canary.rollback.worker-back': ['info', 'After a failed canary, a worker runs the previous release again.'],
  'deploy.rollback.started': ['info', 'A rollback began: a restart onto an earlier release.'],
  'deploy.mixed.detected': ['warn', 'Workers serve different releases (ERR_NSERVE_MIXED_VERSIONS).'],
  'deploy.mixed.resolved': ['info', 'One release serves again after mixed versions.'],
  // workers (cluster mode)
  'worker.spawned': ['info', 'The master started a worker process.'],
  'worker.spawn.failed': ['error', 'Starting a worker process failed.'],
  'worker.standby.started': ['debug', 'A standby worker was started (--standby): it waits, the app not loaded, to be woken as a new worker.'],
  'worker.standby.discarded': ['info', 'A standby worker was not used and is killed: not ready in time, or it runs nserve code older than what is installed.'],
  'worker.standby.failed': ['warn', 'A standby worker could not start, or died while idle; another is started a second later.'],
  'worker.standby.disabled': ['error', 'Standby workers failed 3 times in a row: none is started until a worker boots; new workers start from scratch.'],
  'worker.booted': ['info', "A worker loaded the app and is ready for its slots (the worker's own line)."],
  'worker.boot.failed': ['error', 'A worker failed to boot (ERR_NSERVE_WORKER_BOOT): the app did not load or listen.'],
  'worker.boot.invalid': ['debug', 'A worker found a usage error while booting; the master reports it.'],
  'worker.boot.timeout': ['error', 'A worker did not boot in time (ERR_NSERVE_BOOT_TIMEOUT): it is killed.'],
  'worker.checkin.timeout': ['error', 'A worker stopped checking in (ERR_NSERVE_WORKER_TIMEOUT): it is killed.'],
  'worker.replaced': ['info', 'A worker was replaced by a new one (after a crash, leaving, memory, …).'],
  'worker.replace.failed': ['error', 'Replacing a worker failed; it is retried (or the old one keeps serving).'],
  'worker.not-replaced': ['error', 'A worker is not replaced: the release it would run is gone (ERR_NSERVE_NO_WAY_BACK).'],
  'worker.replaced-from-failed': ['error', 'No worker was left: one is replaced from the release that failed (never zero workers).'],
  'worker.exited': ['error', 'A serving worker exited unexpectedly: its slots are lent, it is replaced.'],
  'worker.exited-in-restart': ['error', 'A worker exited during a restart; the restart decides who serves.'],
  'worker.crash-loop': ['warn', 'Workers are crashing in a loop: replacements back off.'],
  'worker.leaving': ['error', "A worker said it is leaving (the app's uncaught exception, a worker's SIGTERM): it is replaced."],
  'worker.oom-killed': ['error', 'The OOM killer ended a worker (ERR_NSERVE_WORKER_OOM).'],
  'worker.memory.exceeded': ['warn', 'A worker stayed over --worker-max-memory: it is replaced, its replacement first.'],
  'worker.protocol.broken': ['error', 'A worker broke the channel protocol (ERR_NSERVE_PROTOCOL): it is replaced.'],
  'worker.channel.closed': ['error', 'A worker closed its channel but still runs (ERR_NSERVE_PROTOCOL): it is killed.'],
  'worker.drain.killed': ['warn', 'A worker did not exit after draining: it is killed.'],
  'worker.report.implausible': ['warn', "A worker's stats report was implausible and was not counted."],
  'worker.master-gone': ['error', "A worker's master is gone: the worker stops."],
  'worker.message.lost': ['warn', 'A message from the master was lost; the worker asks again.'],
  'worker.send.failed': ['error', 'A worker could not send a message to the master.'],
  'worker.metrics.failed': ['warn', 'A worker could not answer a metrics request.'],
  'worker.uncaught-exception': ['error', 'An uncaught exception in a worker: it drains and is replaced.'],
  'workers.scaled': ['info', 'The number of workers changed (SIGTTIN/SIGTTOU, ctl): from, to.'],
  'workers.scale.failed': ['error', 'Adding a worker failed; the count stays.'],
  'slots.lent': ['info', 'A slot socket was lent to another worker (its worker is gone or replaced).'],
  'slots.rebalance.failed': ['warn', 'Moving slots between workers failed; it is retried.'],
  // signals and the control server
  'signal.ignored': ['warn', 'A signal was ignored: its action is refused now (the reason says why).'],
  'signal.booting.ignored': ['warn', 'Signals received while booting were ignored.'],
  'signal.inspector.closed': ['warn', 'An inspector opened by a SIGUSR1 during start-up was closed (ERR_NSERVE_INSPECTOR).'],
  'signal.report.shared': ['warn', "Node's --report-on-signal listens on one of nserve's signals: each time it is sent, a diagnostic report is written too."],
  'control.server.listening': ['info', 'The control server listens (url, auth).'],
  'control.action.requested': ['info', 'A control action was requested and will run.'],
  'control.action.accepted': ['info', 'A control action was accepted.'],
  'control.action.refused': ['warn', 'A control action was refused (the reason says why).'],
  'control.action.failed': ['error', 'A control request failed inside nserve (ERR_NSERVE_CONTROL_INTERNAL).'],
  'dashboard.login': ['info', 'Someone logged in to the dashboard with a one-time login URL from `nserve ctl dashboard`.'],
  'control.auth.refused': ['warn', 'A control request had no token or a wrong one: 403.'],
  'control.connection.evicted': ['warn', 'Too many control connections without a request: the oldest was dropped.'],
  'control.request.malformed': ['warn', 'A malformed control request was dropped.'],
  'control.warnings.suppressed': ['warn', 'More control warnings of one kind came than are logged: this line counts them.'],
  'control.metrics.failed': ['error', "The control server's /metrics failed."],
  'lock.file.replaced': ['warn', 'The server lock file was replaced while held: it is locked again.'],
  // listeners, TLS, requests, the app
  'listen.socket.activated': ['info', 'Serving a descriptor passed by socket activation (LISTEN_FDS).'],
  'server.queue.takeover-failed': ['warn', 'Taking over the connections queued on a listener failed.'],
  'tls.reload.done': ['info', 'reload-certs: the new certificates and keys serve.'],
  'tls.reload.failed': ['error', 'reload-certs failed for some binds (ERR_NSERVE_TLS): their old certificate keeps serving.'],
  'tls.reload.refused': ['warn', "A worker kept a bind's old certificate: the new one could not be loaded."],
  'http.request.done': ['info', 'Access log: one request answered (method, path, status, ms).'],
  'balance.polling-handshake': ['warn', "socket.io's polling handshake seen with --balance kernel in cluster mode: sessions break."],
  'app.handler.threw': ['error', "The app's request handler threw: 500, or the connection closed."],
  'app.on-drain.failed': ['error', "An app's onDrain listener failed."],
  'hook.timed-out': ['error', 'A hook did not finish in --hook-timeout (ERR_NSERVE_HOOK_TIMEOUT); nserve goes on.'],
  'hook.failed': ['error', 'A hook threw; nserve goes on.'],
  // metrics
  'metrics.listener.serving': ['info', 'The metrics listener serves (url).'],
  'metrics.listener.failed': ['error', 'The metrics listener failed.'],
  'metrics.scrape.failed': ['error', 'A metrics scrape failed: 500.'],
  'metrics.report.missing': ['warn', "A worker exited without its last report: its latest requests are not counted."],
  // descriptors, files, logs, the OS
  'fds.leak.closed': ['warn', 'A descriptor would have leaked into the restarted process: closed at the exec (--leak-policy close).'],
  'fds.leak.found': ['warn', 'A descriptor leaks into the restarted process (--leak-policy warn).'],
  'fds.leak.refused': ['error', 'A descriptor would leak into the restarted process: the restart is refused (--leak-policy refuse).'],
  'fds.leak.inherited': ['warn', 'A descriptor leaked from the previous image (ERR_NSERVE_FD_LEAK).'],
  'fds.count.growing': ['warn', 'The descriptor count grows across restarts (ERR_NSERVE_FD_GROWTH).'],
  'server-file.write-failed': ['error', 'The pidfile could not be written.'],
  'server-file.symlink-replaced': ['warn', 'The pidfile or state file was a symbolic link: the link is replaced.'],
  'server-file.stale': ['warn', 'The pidfile or state file named a process that is not a running nserve: taken over.'],
  'log.lines.dropped': ['warn', 'Output lines could not be written and were dropped; writing works again (droppedLines, code).'],
  'log.files.reopened': ['info', 'SIGHUP reopened the --redirect-stdout/--redirect-stderr files.'],
  'log.files.reopen-failed': ['error', 'Reopening the redirected files failed: lines still go to the old ones.'],
  'systemd.watchdog.enabled': ['info', "systemd's watchdog is enabled: nserve pings it."],
  'reaper.enabled': ['info', 'nserve runs as PID 1: it reaps orphaned processes.'],
  'reaper.orphan.reaped': ['debug', 'An orphaned process was reaped.'],
  'memory.hot-restart-tight': ['warn', 'A hot restart may not fit in the memory limit.'],
  'memory.oom-group': ['warn', 'memory.oom.group=1: an OOM kill ends the whole container (ERR_NSERVE_OOM_GROUP).'],
  'memory.oom-score': ['warn', "A worker's oom_score_adj could not be set; said once."],
} as const satisfies Record<string, readonly [EventLevel, string]>;

export type EventCode = keyof typeof EVENTS;

/**
 * Log one event at the table's level: `{ event, ...fields }` and the message. The code is checked by tsc
 * against the table, so a line cannot carry an event operators were never told about.
 */
/** A logger with the method of the event's level (a narrow `Pick<Logger, 'warn'>` will do for a warning). */
type LoggerFor<C extends EventCode> = Pick<Logger, (typeof EVENTS)[C][0]>;

export function logEvent<C extends EventCode>(log: LoggerFor<C>, event: C, msg: string): void;
export function logEvent<C extends EventCode>(log: LoggerFor<C>, event: C, fields: object, msg: string): void;
export function logEvent<C extends EventCode>(
  log: LoggerFor<C>,
  event: C,
  fieldsOrMsg: object | string,
  msg?: string,
): void {
  const level: EventLevel = EVENTS[event][0];
  // The table says which method; tsc has checked that `log` has it.
  const logger = log as unknown as Pick<Logger, EventLevel>;
  if (typeof fieldsOrMsg === 'string') logger[level]({ event }, fieldsOrMsg);
  else logger[level]({ event, ...fieldsOrMsg }, msg);
}

export function isEventCode(code: unknown): code is EventCode {
  return typeof code === 'string' && Object.hasOwn(EVENTS, code);
}

export const EVENTS_DOC_BEGIN = '<!-- events: generated from src/log/events.ts by scripts/events-doc.mjs -->';
export const EVENTS_DOC_END = '<!-- events: end -->';

/** The list of events in docs/operating.md, between the two markers (a unit test keeps it in step). */
export function renderEventsDoc(): string {
  const rows = Object.entries(EVENTS).map(
    ([code, [level, about]]) => `| \`${code}\` | ${level} | ${about} |`,
  );
  return `${EVENTS_DOC_BEGIN}
| event | level | what it means |
|---|---|---|
${rows.join('\n')}
${EVENTS_DOC_END}`;
}
