// The pidfile (`--pidfile FILE`), and the check that keeps a second server from taking over a live
// server's pidfile or state file. The check is not a lock (two servers started together can both pass
// it): with the addon, control/lock.ts holds the lock, and this check still refuses a file that names a
// server which holds none (portable mode, an older nserve).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { errorCode, usageError } from '../errors.js';
import { logEvent } from '../log/events.js';
import type { Logger } from '../log/logger.js';
import { fileIdentity, fileKind, readRegularFile, writeFileAtomic } from './atomic-file.js';
import { procEntry } from './proc.js';
import { isNserveTitle, titleRole } from './title.js';

/** The pidfile this process wrote (device + inode), so a stop never removes a newer server's file. */
let written: { file: string; dev: number; ino: number } | undefined;

/** Write atomically (temp file + rename), so a reader never sees a half-written PID. */
export function writePidfile(file: string, pid = process.pid): void {
  writeFileAtomic(file, `${pid}\n`, 0o644);
  const id = fileIdentity(file);
  written = id === undefined ? undefined : { file, ...id };
}

/** Write the pidfile of a server that already serves: a failure (directory gone since start) is logged, never fatal. */
export function recordPid(file: string, log: Logger): void {
  try {
    writePidfile(file);
  } catch (err) {
    logEvent(
      log,
      'server-file.write-failed',
      { err, file },
      `cannot write the pidfile ${file}: ${err instanceof Error ? err.message : String(err)}`,
    );
  }
}

/** Remove the pidfile only if it is still ours: it names us, and (if we wrote it in this image) same inode. */
export function removePidfile(file: string, pid = process.pid): void {
  try {
    if (readPidfile(file) !== pid) return;
    if (written !== undefined && written.file === file) {
      const id = fileIdentity(file);
      if (id === undefined || id.dev !== written.dev || id.ino !== written.ino) return;
    }
    fs.unlinkSync(file);
  } catch {
    // already gone
  }
}

/** The PID in a pidfile's text (digits, a newline at most around them); undefined if it holds none. */
export function pidIn(text: string): number | undefined {
  const m = /^\s*(\d{1,10})\s*$/.exec(text);
  const pid = m === null ? Number.NaN : Number(m[1]);
  return Number.isSafeInteger(pid) && pid > 0 ? pid : undefined;
}

/** The PID a pidfile names; undefined if there is no file. Throws on a file that holds no PID. */
export function readPidfile(file: string): number | undefined {
  const text = readRegularFile(file);
  if (text === undefined) return undefined;
  const pid = pidIn(text);
  if (pid === undefined) throw new Error(`${file} holds no PID`);
  return pid;
}

export type Holder = 'self' | 'live-nserve' | 'stale';

/**
 * Who a PID read from a pidfile or state file is: this process (a hot restart re-execs with the same
 * PID), a live nserve, or nobody that counts (gone, a zombie, or a PID reused by another program).
 */
export function holderOf(pid: number): Holder {
  if (pid === process.pid) return 'self';
  const entry = procEntry(pid);
  if (entry === undefined) {
    // /proc may hide other users' processes (hidepid): ask the kernel whether the PID exists at all.
    try {
      process.kill(pid, 0);
      return 'live-nserve';
    } catch (err) {
      return errorCode(err) === 'EPERM' ? 'live-nserve' : 'stale';
    }
  }
  if (entry.state === 'Z' || entry.state === 'X') return 'stale';
  let cmdline: string[];
  try {
    cmdline = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
  } catch {
    return 'live-nserve'; // cannot tell: never take over what may be a live server
  }
  // Its title (`nserve master app.mjs gen 2`, title.ts: Node writes it over argv), or the program:
  // `nserve …` (argv[0]) or `node [node options] …/nserve(.js) …` (the first non-option).
  // titleRole reads a title cut short too: Node cuts process.title to the length of the original
  // command line (`nserve start` with everything in the config file: `nserve master main-applicatio`).
  if (isNserveTitle(cmdline[0] ?? '') || titleRole(cmdline[0] ?? '') !== undefined) return 'live-nserve';
  const script = cmdline.slice(1).find((arg) => !arg.startsWith('-'));
  const isNserve = (arg: string | undefined): boolean =>
    arg !== undefined && /^nserve(\.[cm]?js)?$/.test(path.basename(arg));
  return isNserve(cmdline[0]) || isNserve(script) ? 'live-nserve' : 'stale';
}

export interface ServerFile {
  /** How the user named it, for messages: `--pidfile`, `--state`. */
  flag: string;
  file: string;
  /** What the file is when it is nserve's, for the refusal: `a pidfile (no PID in it)`. */
  kind: string;
  /** The PID in the text of such a file; undefined when the text is not such a file. */
  pidIn: (text: string) => number | undefined;
  /** A file of this kind is never larger: a larger one is not read, and refused. */
  maxBytes: number;
}

/** The file's directory must exist and be writable (before the lock beside the file is taken, too). */
export function checkServerFileDirectory({ flag, file }: Pick<ServerFile, 'flag' | 'file'>): void {
  const dir = path.dirname(file);
  try {
    fs.accessSync(dir, fs.constants.W_OK);
  } catch (err) {
    throw usageError(
      'ERR_NSERVE_INVALID_CONFIG',
      `invalid ${flag} ${file}: cannot write in ${dir} (${errorCode(err) ?? 'error'}): it must name a file in an existing, writable directory`,
    );
  }
}

/**
 * Before anything binds: the file's directory must exist and be writable, and the file, if there is one,
 * must be one nserve may replace: a regular file (or a symlink, which is replaced and never followed), empty
 * or of its kind (a pidfile holds a PID; a state file is nserve's JSON), that does not name a live nserve (a
 * second server would take it over, and delete it when it stops). A file that names a dead process (a
 * crashed server) is taken over, with a log line. Anything else is refused: replacing it would lose a file
 * that is not nserve's (a log, a database), or fail later (a directory).
 */
export function claimServerFile({ flag, file, kind, pidIn, maxBytes }: ServerFile, log: Logger): void {
  checkServerFileDirectory({ flag, file });
  const refuse = (why: string): Error =>
    usageError(
      'ERR_NSERVE_INVALID_CONFIG',
      `invalid ${flag} ${file}: ${why}: refusing to overwrite it; remove it or name another file`,
    );
  let st: fs.Stats;
  try {
    st = fs.lstatSync(file);
  } catch (err) {
    if (errorCode(err) === 'ENOENT') return;
    throw refuse(`cannot inspect it (${errorCode(err) ?? 'error'})`);
  }
  if (st.isSymbolicLink()) {
    claimSymlink(flag, file, pidIn, maxBytes, log);
    return;
  }
  if (!st.isFile())
    throw usageError(
      'ERR_NSERVE_INVALID_CONFIG',
      `invalid ${flag} ${file}: it is ${fileKind(st)}, not a regular file: name a file in an existing, writable directory`,
    );
  if (st.size === 0) return;
  if (st.size > maxBytes) throw refuse(`it exists and is not ${kind}`);
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw refuse(`it exists and cannot be read (${errorCode(err) ?? 'error'})`);
  }
  if (text.trim() === '') return;
  const pid = pidIn(text);
  if (pid === undefined) throw refuse(`it exists and is not ${kind}`);
  checkHolder(flag, file, pid, log);
}

/**
 * A symlink at the name: the write replaces the link itself (atomic-file.ts), never its target, so nothing
 * is lost. Only a link to a live server's file is refused, as that file itself would be.
 */
function claimSymlink(
  flag: string,
  file: string,
  pidIn: (text: string) => number | undefined,
  maxBytes: number,
  log: Logger,
): void {
  let pid: number | undefined;
  try {
    const target = fs.statSync(file);
    if (target.isFile() && target.size <= maxBytes) pid = pidIn(fs.readFileSync(file, 'utf8'));
  } catch {
    // a dangling or unreadable link: nothing that names a server
  }
  if (pid !== undefined) {
    checkHolder(flag, file, pid, log);
    return;
  }
  logEvent(
    log,
    'server-file.symlink-replaced',
    { flag, file },
    `${flag} ${file} is a symbolic link: replacing the link (its target is left alone)`,
  );
}

function checkHolder(flag: string, file: string, pid: number, log: Logger): void {
  const holder = holderOf(pid);
  if (holder === 'live-nserve') {
    throw usageError(
      'ERR_NSERVE_ALREADY_RUNNING',
      `${flag} ${file} names a running nserve (pid ${pid}): stop it first, or give this server another ${flag}`,
    );
  }
  if (holder === 'stale')
    logEvent(
      log,
      'server-file.stale',
      { flag, file, pid },
      `${flag} ${file} is stale (pid ${pid} is not a running nserve): taking it over`,
    );
}
