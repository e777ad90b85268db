// Finding the server `nserve ctl` talks to: its control server (-S STATE or --control-url), or its PID
// for signals when only a pidfile is known (-P); a stale state file or pidfile is refused in one line.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { type ControlAddress, parseControlUrl } from '../control/api.js';
import type { ControlTarget } from '../control/client.js';
import { errorMessage, usageError } from '../errors.js';
import { holderOf } from '../os/pidfile.js';
import { procEntry } from '../os/proc.js';
import { readStateFile } from '../os/state-file.js';
import { titleRole } from '../os/title.js';
import type { CtlOptions } from './ctl.js';

export type Connection =
  | {
      kind: 'control';
      target: ControlTarget;
      /** The server's PID when known locally (state file), to tell "restarting" from "gone". */
      pid: number | undefined;
      stateFile: string | undefined;
    }
  | {
      kind: 'signals';
      pid: number;
      source: string;
      /** From its process title (os/title.ts); undefined when it has none (yet) or it cannot be read. */
      mode: 'cluster' | 'single' | undefined;
    };

/** Is `pid` a live process (not a zombie)? EPERM means it exists but is someone else's. */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  const entry = procEntry(pid);
  return entry === undefined || entry.state !== 'Z';
}

function procText(pid: number, file: 'cmdline' | 'comm'): string | undefined {
  try {
    return fs.readFileSync(`/proc/${pid}/${file}`, 'utf8');
  } catch {
    return undefined;
  }
}

/**
 * A PID read from a pidfile or state file must be a running nserve server before ctl signals it or
 * reports on it: a dead PID, or one reused by another program (a stale file), is refused in one line, and
 * so is a worker (its master is the server). Returns the server's mode as its process title names it.
 */
export function checkServerPid(
  pid: number,
  source: string,
  staleName: string,
): 'cluster' | 'single' | undefined {
  // 0 and negative PIDs would signal process groups (ours, with 0): never a server's PID.
  if (!Number.isSafeInteger(pid) || pid < 1 || pid > 4_194_304)
    throw usageError(
      'ERR_NSERVE_USAGE',
      `${source} names pid ${pid}: expected a process ID from 1 to 4194304`,
    );
  if (!processAlive(pid))
    throw usageError('ERR_NSERVE_USAGE', `stale ${source}: process ${pid} is not running`);
  if (holderOf(pid) !== 'live-nserve') {
    const comm = procText(pid, 'comm')?.trim();
    const runs = comm === undefined || comm === '' ? '' : `it runs ${JSON.stringify(comm)}: `;
    throw usageError(
      'ERR_NSERVE_USAGE',
      `${source} names pid ${pid}, which is not a running nserve (${runs}a stale ${staleName}?): nothing was sent`,
    );
  }
  const role = titleRole(procText(pid, 'cmdline')?.split('\0')[0] ?? '');
  if (role === 'worker' || role === 'standby') {
    const master = procEntry(pid)?.ppid;
    throw usageError(
      'ERR_NSERVE_USAGE',
      `${source} names pid ${pid}, an nserve ${role}, not the server${master === undefined ? '' : ` (its master is pid ${master})`}: nothing was sent`,
    );
  }
  return role === 'master' ? 'cluster' : role;
}

export function connect(opts: CtlOptions): Connection {
  if (opts.controlUrl !== undefined) {
    if (opts.controlUrl === 'auto')
      throw usageError(
        'ERR_NSERVE_USAGE',
        '--control-url auto is for nserve start; point ctl at the server with -S STATE',
      );
    const address = parseControlUrl(opts.controlUrl);
    return {
      kind: 'control',
      target: { address, token: opts.controlToken },
      pid: undefined,
      stateFile: undefined,
    };
  }
  if (opts.controlToken !== undefined)
    throw usageError('ERR_NSERVE_USAGE', '--control-token needs --control-url');
  if (opts.state !== undefined) {
    const file = path.resolve(opts.state);
    let state: ReturnType<typeof readStateFile>;
    try {
      state = readStateFile(file);
    } catch (err) {
      throw usageError('ERR_NSERVE_USAGE', `cannot read state file ${file}: ${errorMessage(err)}`);
    }
    if (state === undefined)
      throw usageError(
        'ERR_NSERVE_USAGE',
        `no state file at ${file}: is nserve running with --state ${opts.state}?`,
      );
    const mode = checkServerPid(state.pid, `state file ${file}`, 'state file');
    if (state.controlUrl === undefined)
      return { kind: 'signals', pid: state.pid, source: `state file ${file}`, mode };
    return {
      kind: 'control',
      target: {
        address: parseControlUrl(state.controlUrl, `controlUrl in ${file}`),
        token: state.controlToken,
      },
      pid: state.pid,
      stateFile: file,
    };
  }
  if (opts.pidfile !== undefined) {
    const file = path.resolve(opts.pidfile);
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT')
        throw usageError(
          'ERR_NSERVE_USAGE',
          `no pidfile at ${file}: is nserve running with --pidfile ${opts.pidfile}?`,
        );
      throw usageError('ERR_NSERVE_USAGE', `cannot read pidfile ${file}: ${errorMessage(err)}`);
    }
    if (!/^\d+\s*$/.test(text))
      throw usageError('ERR_NSERVE_USAGE', `${file} is not a pidfile (expected a PID)`);
    const pid = Number(text.trim());
    const mode = checkServerPid(pid, `pidfile ${file}`, 'pidfile');
    return { kind: 'signals', pid, source: `pidfile ${file}`, mode };
  }
  throw usageError(
    'ERR_NSERVE_USAGE',
    'nserve ctl needs -S STATE, -P PIDFILE or --control-url URL (with --control-token)',
  );
}

/** Re-read the state file (a TCP control port 0 changes at every hot restart). */
export function refresh(conn: Extract<Connection, { kind: 'control' }>): void {
  if (conn.stateFile === undefined) return;
  try {
    const state = readStateFile(conn.stateFile);
    if (state?.controlUrl !== undefined && state.pid === conn.pid) {
      conn.target = { address: parseControlUrl(state.controlUrl), token: state.controlToken };
    }
  } catch {
    // being rewritten: next time
  }
}

export function isLocal(address: ControlAddress): boolean {
  return address.kind === 'unix' || address.host === '127.0.0.1' || address.host === '::1';
}
