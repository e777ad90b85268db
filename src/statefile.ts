// The state file (`--state FILE`): how `nserve ctl -S FILE` finds a running server. It holds the PID and,
// when a control server runs, its URL and token, so it is written mode 0600, atomically (temp file +
// rename: a reader never sees half a file, and never a moment where the file is readable by others), with
// a temp name nobody can predict or plant a symlink at (atomic-file.ts).
import * as fs from 'node:fs';
import { fileIdentity, writeFileAtomic } from './atomic-file.js';

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

/** The state file this process wrote (device + inode), so an exit never removes a newer server's file. */
let written: { file: string; dev: number; ino: number } | undefined;

export function writeStateFile(file: string, state: State): void {
  // Mode 0600 on a fresh file (before the umask, which can only remove bits): it may hold the token.
  writeFileAtomic(file, `${JSON.stringify(state, null, 2)}\n`, 0o600);
  const id = fileIdentity(file);
  written = id === undefined ? undefined : { file, ...id };
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

/**
 * Remove the state file only if it is still ours: it names `pid`, and (if this image wrote it) it is the
 * same inode. A newer server may have taken it over.
 */
export function removeStateFile(file: string, pid = process.pid): void {
  try {
    if (readStateFile(file)?.pid !== pid) return;
    if (written !== undefined && written.file === file) {
      const id = fileIdentity(file);
      if (id === undefined || id.dev !== written.dev || id.ino !== written.ino) return;
    }
    fs.unlinkSync(file);
  } catch {
    // gone or unreadable: nothing of ours to remove
  }
}
