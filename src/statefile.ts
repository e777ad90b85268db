// The state file (`--state FILE`): how `nserve ctl -S FILE` finds a running server. It holds the PID and,
// when a control server runs, its URL and token, so it is written mode 0600, atomically (temp file +
// rename: a reader never sees half a file, and never a moment where the file is readable by others).
import * as fs from 'node:fs';

export interface State {
  /** Format version of this file. */
  version: 1;
  pid: number;
  /** Where the control server listens (after port 0 was resolved); absent without a control server. */
  controlUrl?: string;
  controlToken?: string;
  /** When the server (this PID) first started, across hot restarts. */
  startedAt: string;
  /** The nserve version that wrote the file. */
  nserve: string;
}

export function writeStateFile(file: string, state: State): void {
  const tmp = `${file}.${process.pid}.tmp`;
  fs.rmSync(tmp, { force: true });
  // 'wx': a fresh file, created with mode 0600 (before the umask, which can only remove bits).
  const fd = fs.openSync(tmp, 'wx', 0o600);
  try {
    fs.writeSync(fd, `${JSON.stringify(state, null, 2)}\n`);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, file);
}

/** The state file's content, or undefined if there is no such file. Throws on a malformed file. */
export function readStateFile(file: string): State | undefined {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  const value = JSON.parse(text) as Partial<State>;
  if (typeof value !== 'object' || value === null || !Number.isInteger(value.pid)) {
    throw new Error(`${file} is not an nserve state file (no "pid")`);
  }
  return value as State;
}

/** Remove the state file only if it still names `pid` (a newer server may have taken it over). */
export function removeStateFile(file: string, pid = process.pid): void {
  try {
    if (readStateFile(file)?.pid === pid) fs.unlinkSync(file);
  } catch {
    // gone or unreadable: nothing of ours to remove
  }
}
