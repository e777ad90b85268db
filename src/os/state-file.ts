// The state file (`--state FILE`): how `nserve ctl -S FILE` finds a running server. It holds the PID and,
// when a control server runs, its URL and token, so it is written mode 0600, atomically (temp file +
// rename: a reader never sees half a file, and never a moment where the file is readable by others), with
// a temp name nobody can predict or plant a symlink at (atomic-file.ts).
import * as fs from 'node:fs';
import { fileIdentity, readRegularFile, writeFileAtomic } from './atomic-file.js';

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
  const text = readRegularFile(file);
  if (text === undefined) return undefined;
  const value = JSON.parse(text) as Partial<State>;
  if (typeof value !== 'object' || value === null || !Number.isInteger(value.pid)) {
    throw new Error(`${file} is not an nserve state file (no "pid")`);
  }
  return value as State;
}

/** A state file is never larger than this (a PID, a URL, a token, a date, a version). */
export const STATE_FILE_MAX_BYTES = 16 * 1024;

/**
 * The PID in the text of a file nserve wrote as a state file (what writeStateFile writes: a JSON object
 * with version 1, a positive integer pid, startedAt and nserve strings, and strings or nothing for the
 * control URL and token); undefined for any other text. Strict on purpose: a file that is not recognised is
 * not replaced (claimServerFile). Other keys are allowed, so a file written by another nserve version (a
 * hot restart to new code, a rollback) is still recognised.
 */
export function statePidIn(text: string): number | undefined {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
  const v = value as Record<string, unknown>;
  const optionalString = (x: unknown): boolean => x === undefined || typeof x === 'string';
  if (
    v.version !== 1 ||
    typeof v.pid !== 'number' ||
    !Number.isSafeInteger(v.pid) ||
    v.pid <= 0 ||
    typeof v.startedAt !== 'string' ||
    typeof v.nserve !== 'string' ||
    !optionalString(v.controlUrl) ||
    !optionalString(v.controlToken)
  )
    return undefined;
  return v.pid;
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
