// `nserve fds`: the descriptors of a running server and its workers, with roles and leak flags.
import * as fs from 'node:fs';
import type { Command } from 'commander';
import { errorCode, usageError } from '../errors.js';
import { formatFdTable, inspect, type ProcessFds, withoutNodeFds } from '../os/descriptors.js';
import { childProcesses } from '../os/proc.js';
import { titleWorkerIndex } from '../os/title.js';
import { workerIndexFromEnviron } from '../restart/handoff.js';

/**
 * A worker's index: its environment's, or its title's for a woken standby (started before it had an
 * index: its environment, as /proc shows it, is the one it was started with).
 */
function workerIndex(pid: number): number | undefined {
  try {
    const fromEnv = workerIndexFromEnviron(fs.readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0'));
    if (fromEnv !== undefined) return fromEnv;
    return titleWorkerIndex(fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')[0] ?? '');
  } catch {
    return undefined;
  }
}

/** Read /proc directly: the server PID and its worker children. */
export function fdsFromProc(pid: number): ProcessFds[] {
  if (!fs.existsSync(`/proc/${pid}`)) {
    throw usageError('ERR_NSERVE_USAGE', `no process with PID ${pid}`);
  }
  try {
    return readFromProc(pid);
  } catch (err) {
    const code = errorCode(err);
    // Another user's process (or one the kernel keeps from us): one line, as any other refusal.
    if (code === 'EACCES' || code === 'EPERM')
      throw usageError(
        'ERR_NSERVE_USAGE',
        `cannot read the descriptors of pid ${pid}: ${code} (not your process: run as its user or root)`,
      );
    if (code === 'ENOENT' || code === 'ESRCH')
      throw usageError('ERR_NSERVE_USAGE', `pid ${pid} exited while its descriptors were read`);
    throw err;
  }
}

function readFromProc(pid: number): ProcessFds[] {
  const workers = childProcesses(pid)
    .filter((p) => p.state !== 'Z')
    .map((p) => ({ pid: p.pid, index: workerIndex(p.pid) }))
    .filter((w) => w.index !== undefined);
  const main = inspect(pid, workers.length > 0 ? 'master' : 'single', {});
  return [main, ...workers.map((w) => inspect(w.pid, 'worker', { channels: [3] }, w.index))];
}

export interface FdsOptions {
  pid?: string;
  json?: boolean;
  all?: boolean;
}

/** How to reach the server's control API, when the ctl module provides it. */
export type FetchFds = (opts: Record<string, unknown>) => Promise<ProcessFds[]>;

export function registerFdsCommand(
  program: Command,
  viaControl?: { options: (cmd: Command) => Command; fetch: FetchFds },
): void {
  let cmd = program
    .command('fds')
    .description(
      'list the descriptors of a running server and its workers; flag those that would leak on the next hot restart',
    )
    .option('--pid <pid>', 'read /proc for this server PID directly (no control server needed)')
    .option('-P, --pidfile <file>', 'the server pidfile: read /proc for that PID')
    .option('--all', "also list Node's own descriptors (epoll, eventfd, its self-pipes, /dev/null)")
    .option('--json', 'print JSON');
  if (viaControl !== undefined) cmd = viaControl.options(cmd);
  cmd.action(async (opts: FdsOptions & Record<string, unknown>) => {
    let procs: ProcessFds[];
    if (opts.pid !== undefined) {
      if (!/^\d+$/.test(opts.pid))
        throw usageError('ERR_NSERVE_USAGE', `invalid --pid: "${opts.pid}": expected a process ID`);
      procs = fdsFromProc(Number(opts.pid));
    } else if (
      viaControl !== undefined &&
      ['state', 'pidfile', 'controlUrl'].some((k) => opts[k] !== undefined)
    ) {
      procs = await viaControl.fetch(opts);
    } else {
      throw usageError(
        'ERR_NSERVE_USAGE',
        `nserve fds needs -S STATE, -P PIDFILE, --pid PID${viaControl === undefined ? '' : ' or --control-url URL'}`,
      );
    }
    procs = withoutNodeFds(procs, opts.all === true);
    process.stdout.write(
      opts.json === true ? `${JSON.stringify(procs, null, 2)}\n` : `${formatFdTable(procs)}\n`,
    );
  });
}
