// `nserve ctl COMMAND`: drive a running server through its control server (found with -S STATE, or given
// with --control-url/--control-token), or with signals when only a pidfile is known (-P). The signal for
// each command comes from the one table in control/signals.ts.
//
// Exit status: 0 done; 1 the restart or stop waited for (--wait) failed or did not finish in time;
// 2 it could not be asked (bad usage, no server at that address, stale state file or pidfile, wrong
// token, the server refused).
import { Argument, type Command } from 'commander';
import { formatControlUrl } from '../control/api.js';
import { ControlError, call } from '../control/client.js';
import { routeForAction } from '../control/endpoints.js';
import { SIGNAL_COMMANDS } from '../control/signals.js';
import type { ControlAction } from '../control/status.js';
import { errorCode, NserveError, usageError } from '../errors.js';
import { describeReload } from '../listen/tls.js';
import { formatFdTable, type ProcessFds, withoutNodeFds } from '../os/descriptors.js';
import { type Connection, connect, isLocal, processAlive } from './ctl-connect.js';
import { dashboardLoginUrl, LOGIN_NOTE, openInBrowser } from './ctl-dashboard.js';
import { CtlFailure, EXIT_FAILED, EXIT_USAGE } from './ctl-failure.js';
import { describeRestartDone, formatStats, formatStatus, oneLine, statusSummary } from './ctl-format.js';
import { asCertReload, asFds, asStats } from './ctl-shape.js';
import { REQUEST_TIMEOUT_MS, waitForExit, waitForRestart } from './ctl-wait.js';
import { fdsFromProc } from './fds.js';

export { processAlive };

export const CTL_COMMANDS = [
  'status',
  'stats',
  'restart',
  'phased-restart',
  'rollback',
  'stop',
  'halt',
  'reload-worker-directory',
  'reload-certs',
  'fds',
  'workers',
  'dashboard',
] as const;
export type CtlCommand = (typeof CTL_COMMANDS)[number];

export interface CtlOptions {
  state?: string;
  pidfile?: string;
  controlUrl?: string;
  controlToken?: string;
  json?: boolean;
  all?: boolean;
  wait?: boolean;
  timeout?: string;
  hot?: boolean;
  phased?: boolean;
  open?: boolean;
}

// ── commands ───────────────────────────────────────────────────────────────────────────────────────────

const ACTIONS: Partial<Record<CtlCommand, ControlAction>> = {
  restart: 'restart',
  'phased-restart': 'phased-restart',
  rollback: 'rollback',
  stop: 'stop',
  halt: 'halt',
  'reload-worker-directory': 'reload-worker-directory',
  'reload-certs': 'reload-certs',
};

/** `rollback --hot` / `--phased`: the query that asks for that kind (none: the last restart's kind). */
function rollbackKind(command: CtlCommand, opts: CtlOptions): string {
  if (opts.hot !== true && opts.phased !== true) return '';
  if (command !== 'rollback')
    throw usageError('ERR_NSERVE_USAGE', `--hot and --phased apply to rollback, not ${command}`);
  if (opts.hot === true && opts.phased === true)
    throw usageError('ERR_NSERVE_USAGE', 'rollback takes --hot or --phased, not both');
  return opts.hot === true ? '?kind=hot' : '?kind=phased';
}

function workersAction(value: string | undefined): ControlAction {
  if (value === '+1' || value === '1') return 'workers+1';
  if (value === '-1') return 'workers-1';
  throw usageError(
    'ERR_NSERVE_USAGE',
    `invalid workers argument: ${JSON.stringify(value ?? '')}: expected +1 or -1 (nserve ctl workers +1)`,
  );
}

function out(text: string): void {
  process.stdout.write(text.endsWith('\n') ? text : `${text}\n`);
}

function json(value: unknown): void {
  out(JSON.stringify(value, null, 2));
}

function timeoutMs(opts: CtlOptions): number {
  const dflt = opts.wait === true ? 300 : REQUEST_TIMEOUT_MS / 1000;
  if (opts.timeout === undefined) return dflt * 1000;
  if (!/^\d+(\.\d+)?$/.test(opts.timeout) || Number(opts.timeout) <= 0)
    throw usageError(
      'ERR_NSERVE_USAGE',
      `invalid --timeout: ${JSON.stringify(opts.timeout)}: expected seconds > 0`,
    );
  return Number(opts.timeout) * 1000;
}

/**
 * `nserve ctl COMMAND`: find the server, send, then follow with --wait. Long on purpose: one branch per
 * command, each with the one-line refusal its bad input gets.
 */
export async function runCtl(
  command: CtlCommand,
  value: string | undefined,
  opts: CtlOptions,
): Promise<number> {
  const waitable = ['restart', 'phased-restart', 'stop', 'halt', 'rollback'];
  if (opts.wait === true && !waitable.includes(command))
    throw usageError('ERR_NSERVE_USAGE', `--wait applies to ${waitable.join(', ')}, not ${command}`);
  if (command !== 'workers' && value !== undefined)
    throw usageError(
      'ERR_NSERVE_USAGE',
      `nserve ctl ${command} takes no argument (got ${JSON.stringify(value)})`,
    );
  if (opts.open === true && command !== 'dashboard')
    throw usageError('ERR_NSERVE_USAGE', `--open applies to dashboard, not ${command}`);
  const kind = rollbackKind(command, opts);
  const limitMs = timeoutMs(opts);
  const action = command === 'workers' ? workersAction(value) : ACTIONS[command];
  const conn = connect(opts);
  const requestMs = Math.min(limitMs, REQUEST_TIMEOUT_MS);
  if (command === 'dashboard') {
    const login = await dashboardLoginUrl(conn, requestMs);
    if (opts.json === true) json({ url: login });
    else {
      out(login);
      process.stderr.write(`(${LOGIN_NOTE})\n`);
    }
    if (opts.open === true) openInBrowser(login);
    return 0;
  }
  if (conn.kind === 'signals') return bySignal(command, action, conn, opts);

  const url = formatControlUrl(conn.target.address);
  if (command === 'status' || command === 'stats') {
    const stats = asStats(url, await call(conn.target, 'GET', '/stats', requestMs));
    if (opts.json === true) json(command === 'stats' ? stats : statusSummary(stats));
    else out(command === 'stats' ? formatStats(stats) : formatStatus(stats));
    return 0;
  }
  if (command === 'fds') {
    const procs = withoutNodeFds(
      asFds(url, await call(conn.target, 'GET', '/fds', requestMs)),
      opts.all === true,
    );
    if (opts.json === true) json(procs);
    else out(formatFdTable(procs));
    return 0;
  }
  const route = routeForAction(action!);
  const answer = await call(conn.target, 'POST', `${route.path}${kind}`, requestMs);
  if (answer.accepted !== true || typeof answer.pid !== 'number')
    throw new CtlFailure(
      `${url} answered POST ${route.path} without saying it accepted it (no "accepted": true and "pid"): nothing is known to have happened`,
      EXIT_USAGE,
    );
  const pid = conn.pid ?? (isLocal(conn.target.address) ? answer.pid : undefined);
  if (command === 'reload-certs') return certVerdict(url, answer, opts);
  if (opts.wait !== true) {
    if (opts.json === true) json(answer);
    else out(describeAnswer(command, answer));
    return 0;
  }
  if (command === 'stop' || command === 'halt') {
    if (pid === undefined) throw new CtlFailure('--wait for stop needs a local server (its PID)', EXIT_USAGE);
    await waitForExit(pid, limitMs);
    if (opts.json === true) json({ ...answer, exited: true });
    else out(`stopped (pid ${pid})`);
    return 0;
  }
  const id = answer.restart;
  if (typeof id !== 'number')
    throw new CtlFailure('the server did not say which restart it started', EXIT_FAILED);
  const record = await waitForRestart(conn, id, pid, limitMs);
  if (opts.json === true) json(record);
  if (record.outcome === 'failed') {
    if (opts.json !== true)
      process.stderr.write(`nserve: error: ${record.kind} restart #${id} failed: ${oneLine(record.error)}\n`);
    return EXIT_FAILED;
  }
  if (opts.json !== true) out(describeRestartDone(record));
  return 0;
}

function bySignal(
  command: CtlCommand,
  action: ControlAction | undefined,
  conn: Extract<Connection, { kind: 'signals' }>,
  opts: CtlOptions,
): number {
  if (command === 'status') {
    if (opts.json === true) json({ running: true, pid: conn.pid, control: false });
    else
      out(
        `running: pid ${conn.pid} (from ${conn.source}); no control server, so no details (start with --control-url)`,
      );
    return 0;
  }
  if (command === 'fds') {
    const procs = withoutNodeFds(fdsFromProc(conn.pid), opts.all === true);
    if (opts.json === true) json(procs);
    else out(formatFdTable(procs));
    return 0;
  }
  const signal = SIGNAL_COMMANDS.find((c) => c.action === action)?.signal;
  if (signal === undefined) {
    throw usageError(
      'ERR_NSERVE_USAGE',
      `nserve ctl ${command} needs the control server (no signal does it): start nserve with --control-url and --state, and use -S`,
    );
  }
  if (opts.wait === true) {
    throw usageError(
      'ERR_NSERVE_USAGE',
      `--wait needs the control server to follow the ${command} (with ${conn.source} only a signal can be sent)`,
    );
  }
  if (command === 'reload-certs') {
    // SIGHUP reloads certificates only on a server with ssl:// binds; on one with neither ssl:// binds nor
    // redirected output it is a graceful stop (docs/signals.md), and from outside ctl cannot tell which.
    throw usageError(
      'ERR_NSERVE_USAGE',
      `nserve ctl reload-certs needs the control server (-S with a state file naming a control URL): over a signal ctl cannot tell whether pid ${conn.pid} has ssl:// binds, and SIGHUP stops a server that has neither ssl:// binds nor redirected output; nothing was sent (if it has ssl:// binds: kill -HUP ${conn.pid})`,
    );
  }
  if (command === 'workers') {
    if (conn.mode === 'single')
      throw usageError(
        'ERR_NSERVE_USAGE',
        `pid ${conn.pid} (${conn.source}) runs in single mode, and single mode has no workers: start with -w N; nothing was sent`,
      );
    if (conn.mode === undefined)
      throw usageError(
        'ERR_NSERVE_USAGE',
        `cannot tell whether pid ${conn.pid} (${conn.source}) runs in cluster mode (no nserve process title in /proc/${conn.pid}/cmdline): nothing was sent; use the control server (-S), or kill -${signal.slice(3)} ${conn.pid}`,
      );
  }
  try {
    process.kill(conn.pid, signal);
  } catch (err) {
    const code = errorCode(err) ?? 'error';
    throw usageError(
      'ERR_NSERVE_USAGE',
      `cannot send ${signal} to pid ${conn.pid} (${conn.source}): ${code}${code === 'EPERM' ? ' (not your process: run as its user or root)' : ''}`,
    );
  }
  if (opts.json === true) json({ signal, pid: conn.pid });
  else out(`sent ${signal} to pid ${conn.pid} (${command})`);
  return 0;
}

// ── output ─────────────────────────────────────────────────────────────────────────────────────────────

function describeAnswer(command: CtlCommand, answer: Record<string, unknown>): string {
  const detail = typeof answer.detail === 'string' ? `: ${answer.detail}` : '';
  if (typeof answer.restart === 'number')
    return `${command} #${answer.restart} accepted (pid ${answer.pid})${detail}`;
  return `${command} accepted (pid ${answer.pid})${detail}`;
}

/** reload-certs: the verdict (the server answers once every worker has); exit 1 if any file was refused. */
function certVerdict(url: string, answer: Record<string, unknown>, opts: CtlOptions): number {
  const report = asCertReload(url, answer);
  if (opts.json === true) json(answer);
  else if (report.ok) out(describeReload(report));
  else process.stderr.write(`nserve: error: ${describeReload(report)}\n`);
  return report.ok ? 0 : EXIT_FAILED;
}

export function connectionOptions(cmd: Command): Command {
  return cmd
    .option('-S, --state <file>', 'the state file the server writes (--state): PID, control URL and token')
    .option('--control-url <url>', 'control server address: unix:///path or tcp://HOST:PORT')
    .option('--control-token <token>', 'token for --control-url');
}

/** Report a failure as one line; returns the exit status. */
export function reportFailure(err: unknown): number {
  if (err instanceof CtlFailure) {
    process.stderr.write(`nserve: error: ${err.message}\n`);
    return err.exitCode;
  }
  if (err instanceof ControlError) {
    process.stderr.write(`nserve: error: ${err.message}\n`);
    return EXIT_USAGE;
  }
  if (err instanceof NserveError && err.usage) {
    process.stderr.write(`nserve: error: ${err.message}\n`);
    return EXIT_USAGE;
  }
  throw err;
}

export function registerCtlCommand(program: Command): void {
  const cmd = program
    .command('ctl')
    .description('control a running server: through its control server (-S, --control-url) or signals (-P)')
    .addArgument(new Argument('<command>', 'what to do').choices(CTL_COMMANDS))
    .argument('[value]', 'for workers: +1 or -1')
    .option(
      '-P, --pidfile <file>',
      'the server pidfile: signals only (restart, phased-restart, stop, workers in cluster mode)',
    )
    .option('--json', 'print JSON (for scripts)')
    .option('--all', "fds: also list Node's own descriptors")
    .option(
      '--wait',
      'restart, phased-restart, rollback: wait until it finished, exit 1 if it failed; stop, halt: until the server exited',
    )
    .option('--timeout <s>', 'give up after S seconds (default 10; with --wait 300)')
    .option('--hot', 'rollback: as a hot restart')
    .option('--phased', 'rollback: as a phased restart (cluster mode)')
    .option('--open', 'dashboard: also open the login URL in a browser (xdg-open)');
  connectionOptions(cmd).addHelpText(
    'after',
    `
Commands:
  status                   one-paragraph summary (state, workers, last restart)
  stats                    everything /stats reports, as tables
  restart                  hot restart (SIGUSR2 with -P)
  phased-restart           phased restart, cluster mode (SIGUSR1 with -P)
  rollback                 restart onto the previous release (--hot/--phased; default: the last restart's kind)
  stop                     graceful stop (SIGTERM with -P)
  halt                     immediate stop (control server only)
  reload-worker-directory  re-resolve --directory for workers spawned from now on
  reload-certs             re-read the certificates of ssl:// binds, print the verdict (control server only)
  fds                      descriptors of the server and its workers
  workers +1|-1            add or remove a worker (SIGTTIN/SIGTTOU with -P)
  dashboard                print a one-time login URL of the dashboard page (TCP control server only; --open)

Exit status: 0 done; 1 a restart waited for failed (or timed out), or reload-certs refused a file; 2 could not ask (no server,
stale state file or pidfile, wrong token, refused by the server).`,
  );
  cmd.action(async (command: CtlCommand, value: string | undefined, opts: CtlOptions) => {
    try {
      process.exitCode = await runCtl(command, value, opts);
    } catch (err) {
      process.exitCode = reportFailure(err);
    }
  });
}

/** `nserve fds -S STATE` / `--control-url`: the descriptors through the control server. */
export const fdsViaControl = {
  options: connectionOptions,
  async fetch(opts: Record<string, unknown>): Promise<ProcessFds[]> {
    const conn = connect(opts as CtlOptions);
    if (conn.kind === 'signals') return fdsFromProc(conn.pid);
    try {
      return asFds(
        formatControlUrl(conn.target.address),
        await call(conn.target, 'GET', '/fds', REQUEST_TIMEOUT_MS),
      );
    } catch (err) {
      if (err instanceof ControlError || err instanceof CtlFailure)
        throw usageError('ERR_NSERVE_USAGE', err.message);
      throw err;
    }
  },
};
