// What a release directory says about itself: its version, for the deploy record (record.ts). Read from
// files in the release (a `REVISION` file's first line, else package.json's `version`), never from the
// environment: the environment is the server's, and would name the same version for every release.
// Both files are untrusted input (written by a build, a deploy tool, a person): each is read up to a
// size cap, anything odd (missing, unreadable, binary, huge, not JSON) gives no version, never a crash.
import * as fs from 'node:fs';
import * as path from 'node:path';

/** A release: the resolved directory and the version it names (null when it names none). */
export interface ReleaseRef {
  directory: string;
  version: string | null;
}

/** At most this many bytes of a REVISION file are read (a git SHA and a tag fit many times over). */
export const REVISION_MAX_BYTES = 4096;
/** package.json files larger than this are not parsed. */
export const PACKAGE_JSON_MAX_BYTES = 256 * 1024;
/** Versions are cut to this many characters. */
export const VERSION_MAX_CHARS = 64;

/**
 * The version a release directory names: the first line of `REVISION` (trimmed), else the `version` of
 * `package.json`; null if neither gives a printable one.
 */
export function readReleaseVersion(directory: string): string | null {
  const revision = readCapped(path.join(directory, 'REVISION'), REVISION_MAX_BYTES);
  if (revision !== undefined) {
    const first = cleanVersion(revision.text.split(/\r?\n/, 1)[0] ?? '');
    if (first !== null) return first;
  }
  const pkg = readCapped(path.join(directory, 'package.json'), PACKAGE_JSON_MAX_BYTES);
  if (pkg === undefined || pkg.truncated) return null;
  try {
    const parsed: unknown = JSON.parse(pkg.text);
    if (typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)) {
      const version = (parsed as Record<string, unknown>).version;
      if (typeof version === 'string') return cleanVersion(version);
    }
  } catch {
    // not JSON: no version
  }
  return null;
}

/** The release at `directory`, with its version. */
export function releaseOf(directory: string): ReleaseRef {
  return { directory, version: readReleaseVersion(directory) };
}

/** A version as shown: trimmed, control characters dropped, at most VERSION_MAX_CHARS; null if empty. */
export function cleanVersion(raw: string): string | null {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is removed
  const text = raw.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029\ufffd]/g, '').trim();
  if (text === '') return null;
  const chars = Array.from(text);
  return chars.length > VERSION_MAX_CHARS ? `${chars.slice(0, VERSION_MAX_CHARS - 1).join('')}…` : text;
}

/** A release handed over by another image (or an older nserve): undefined unless it has the right shape. */
export function readReleaseRef(v: unknown): ReleaseRef | undefined {
  if (typeof v !== 'object' || v === null) return undefined;
  const o = v as Record<string, unknown>;
  if (typeof o.directory !== 'string' || o.directory === '') return undefined;
  const version = typeof o.version === 'string' ? cleanVersion(o.version) : null;
  return { directory: o.directory, version };
}

/** A release as one short phrase: `v2 (/var/www/releases/v2)`, or the directory alone. */
export function describeRelease(r: ReleaseRef): string {
  return r.version === null ? r.directory : `${r.version} (${r.directory})`;
}

/** `path` resolved through its symlinks, or as given when it cannot be (the caller reports that). */
export function realpathOr(file: string): string {
  try {
    return fs.realpathSync(file);
  } catch {
    return file;
  }
}

export function isDirectory(dir: string): boolean {
  try {
    return fs.statSync(dir).isDirectory();
  } catch {
    return false;
  }
}

/** The first `max` bytes of a regular file as UTF-8, and whether there was more; undefined if unreadable. */
function readCapped(file: string, max: number): { text: string; truncated: boolean } | undefined {
  let fd: number | undefined;
  try {
    // Nothing but a regular file is opened: opening a device (a REVISION symlinked to /dev/…) can act.
    if (!fs.statSync(file).isFile()) return undefined;
    // O_NONBLOCK: a FIFO swapped in since the stat must not block the server; O_NOCTTY: nor a tty
    // become the server's terminal. The fstat checks what was opened.
    fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK | fs.constants.O_NOCTTY);
    const stat = fs.fstatSync(fd);
    if (!stat.isFile()) return undefined;
    const buf = Buffer.alloc(max + 1);
    let n = 0;
    while (n < buf.length) {
      const got = fs.readSync(fd, buf, n, buf.length - n, null);
      if (got === 0) break;
      n += got;
    }
    return { text: buf.subarray(0, Math.min(n, max)).toString('utf8'), truncated: n > max };
  } catch {
    return undefined;
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}
