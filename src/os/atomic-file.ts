// Writing a file that others read (the pidfile, the state file) so that nobody can make nserve write
// somewhere else, and no reader ever sees half of it.
//
// The temp file has an unpredictable name and is created with O_CREAT | O_EXCL | O_NOFOLLOW: a symlink or
// file planted at any name in a shared directory (as another user could in /tmp or a world-writable /run)
// makes the open fail instead of redirecting the write to the link's target. rename(2) then replaces the
// final name itself (a symlink there is replaced, never followed).
import * as fs from 'node:fs';
import * as path from 'node:path';

const CREATE_FRESH =
  fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW;

/** Write `content` to `file` atomically (temp file + rename), with `mode` (before the umask). */
export function writeFileAtomic(file: string, content: string, mode: number): void {
  const tmp = path.join(
    path.dirname(file),
    `.${path.basename(file)}.${process.getBuiltinModule('node:crypto').randomBytes(8).toString('hex')}.tmp`,
  );
  // Node adds O_CLOEXEC to every open.
  const fd = fs.openSync(tmp, CREATE_FRESH, mode);
  try {
    try {
      fs.writeSync(fd, content);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, file);
  } catch (err) {
    fs.rmSync(tmp, { force: true });
    throw err;
  }
}

/** Device and inode of `file` (not following a symlink), or undefined if there is none. */
export function fileIdentity(file: string): { dev: number; ino: number } | undefined {
  try {
    const st = fs.lstatSync(file);
    return { dev: st.dev, ino: st.ino };
  } catch {
    return undefined;
  }
}

/**
 * The text of a regular file (following a symlink); undefined if there is no file. Throws on anything else
 * (a directory, a FIFO — whose read would block —, a socket, a device) without opening it.
 */
export function readRegularFile(file: string): string | undefined {
  let st: fs.Stats;
  try {
    st = fs.statSync(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  if (!st.isFile()) throw new Error(`${file} is ${fileKind(st)}, not a regular file`);
  return fs.readFileSync(file, 'utf8');
}

/** What a file is, for messages: `a directory`, `a FIFO`, … */
export function fileKind(st: fs.Stats): string {
  if (st.isFile()) return 'a regular file';
  if (st.isDirectory()) return 'a directory';
  if (st.isFIFO()) return 'a FIFO';
  if (st.isSocket()) return 'a socket';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  if (st.isSymbolicLink()) return 'a symbolic link';
  return 'not a regular file';
}
