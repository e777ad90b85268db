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
