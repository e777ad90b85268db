// The one table of signals: each command's signal and control-server path (the CLI, the control server
// and docs/signals.md are fed from it), and the signals a hot restart's exec holds. A leaf: the control
// server's routes (control/endpoints.ts) and the hot restart's exec read it; the handlers that act on
// these signals, in a master or a single server only, are control/signal-handlers.ts.
export type Action = 'restart' | 'phased-restart' | 'stop' | 'workers+1' | 'workers-1' | 'reload-certs';

export interface SignalCommand {
  action: Action;
  signal: NodeJS.Signals;
  path: string;
  description: string;
}

export const SIGNAL_COMMANDS: readonly SignalCommand[] = [
  {
    action: 'restart',
    signal: 'SIGUSR2',
    path: '/restart',
    description: 'hot restart: re-exec in place, listening sockets kept open',
  },
  {
    action: 'phased-restart',
    signal: 'SIGUSR1',
    path: '/phased-restart',
    description: 'phased restart: replace workers one at a time (cluster mode; hot restart in single mode)',
  },
  { action: 'stop', signal: 'SIGTERM', path: '/stop', description: 'graceful stop: drain, then exit 0' },
  { action: 'stop', signal: 'SIGINT', path: '/stop', description: 'graceful stop (as SIGTERM)' },
  {
    action: 'workers+1',
    signal: 'SIGTTIN',
    path: '/workers/increment',
    description: 'add a worker (cluster mode)',
  },
  {
    action: 'workers-1',
    signal: 'SIGTTOU',
    path: '/workers/decrement',
    description: 'remove a worker, never below 1 (cluster mode)',
  },
  {
    action: 'reload-certs',
    signal: 'SIGHUP',
    path: '/reload-certs',
    description:
      're-read the certificate and key of every ssl:// bind in every worker (new handshakes use them; a bad file keeps the old one)',
  },
];

/**
 * The restart signals, ignored and blocked across the re-exec (restart/exec.ts). Node resets ignored
 * signals to their default action at start-up, so the new image is started with a preloaded recorder
 * that Node leaves in place (native/early_signals.cc) until bin/nserve.js installs catching handlers.
 * SIGTERM and SIGINT are not among them: Node installs its own handlers for those (docs/restarts.md).
 */
export const IGNORED_ACROSS_EXEC: readonly NodeJS.Signals[] = [
  'SIGUSR1',
  'SIGUSR2',
  'SIGHUP',
  'SIGTTIN',
  'SIGTTOU',
];

/**
 * The stop signals, blocked (not ignored) across a hot restart's exec when the recorder is preloaded:
 * it keeps them blocked through Node's start-up, which would otherwise die on one (its own SIGTERM and
 * SIGINT handlers), and installSignalHandlers unblocks them once nserve's handlers are in place; one that
 * arrived meanwhile is then delivered, and the server stops gracefully.
 */
export const HELD_ACROSS_EXEC: readonly NodeJS.Signals[] = ['SIGTERM', 'SIGINT'];

/** docs/signals.md, generated from the table (a unit test keeps the file in step). */
export function renderSignalsDoc(): string {
  const rows = SIGNAL_COMMANDS.map(
    (c) => `| \`${c.signal}\` | ${c.action} | \`${c.path}\` | ${c.description} |`,
  );
  return `# Signals

nserve reacts to these signals. This page is generated from \`src/control/signals.ts\`, the one table that maps
signals to actions and control-server paths (\`node -e "import('./dist/src/control/signals.js').then(m => process.stdout.write(m.renderSignalsDoc()))" > docs/signals.md\`).

| signal | action | control path | what it does |
|---|---|---|---|
${rows.join('\n')}

Examples:

\`\`\`sh
kill -USR2 $(cat /run/nserve.pid)   # hot restart
kill -USR1 $(cat /run/nserve.pid)   # phased restart (cluster mode)
kill -TTIN $(cat /run/nserve.pid)   # one more worker (cluster mode)
kill -TERM $(cat /run/nserve.pid)   # graceful stop
\`\`\`

\`SIGHUP\` reopens the files given to \`--redirect-stdout\` and \`--redirect-stderr\` (for logrotate's
\`postrotate\`; a master passes it on to its workers, which reopen theirs). With \`ssl://\` binds it also
re-reads their certificates and keys (\`reload-certs\`: an ACME client's deploy hook). With neither
redirected output nor \`ssl://\` binds, \`SIGHUP\` means the terminal went away: graceful stop, as
\`SIGTERM\`.

Workers ignore these signals, except \`SIGTERM\`: the master coordinates. A \`SIGTERM\` sent to one worker
alone asks the master to replace it (its slots move first); one that reaches the master as well (a
group's) is the master's stop, which drains that worker.

**Stops sent to the whole group.** A terminal's Ctrl-C sends \`SIGINT\` to every process of the foreground
group, \`kill -TERM -PGID\` to every process of the group, and systemd's default \`KillMode=control-group\`
to every process of the unit. Each drains exactly like a \`SIGTERM\` to the master: every request in flight
completes, nothing is replaced, exit status 0. The rule that makes it so: **the app's own \`SIGTERM\` and
\`SIGINT\` listeners run only after nserve's drain**, in workers and in single mode. A listener the app adds
for either is held; once the stop's drain is done, the listeners of each stop signal the process received
run (an app's cleanup gets up to 2 s, or \`--hook-timeout\` if shorter), then the process exits with the
stop's status, 0 (a listener's own \`process.exit(143)\`, as Next.js's, ends its cleanup, not the stop's
verdict). So an app
that exits at once on a stop signal (Next.js's server does; \`NEXT_MANUAL_SIG_HANDLE=1\` turns its handlers
off) can no longer cut requests short. The shipped systemd unit uses \`KillMode=mixed\` anyway: the stop
signal goes to the master alone.

\`nserve ctl -P PIDFILE\` sends these signals only to a PID that is a running nserve server (a stale
pidfile is refused), never \`SIGHUP\` (\`reload-certs\` needs the control server: from outside, ctl cannot
tell whether \`SIGHUP\` would reload certificates or stop the server), and \`SIGTTIN\`/\`SIGTTOU\` only to a
cluster-mode server ([control](control.md#nserve-ctl)).
`;
}
