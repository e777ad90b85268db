import * as fs from 'node:fs';

/** Write atomically (temp file + rename), so a reader never sees a half-written PID. */
export function writePidfile(file: string, pid = process.pid): void {
  const tmp = `${file}.${pid}.tmp`;
  fs.writeFileSync(tmp, `${pid}\n`, { mode: 0o644 });
  fs.renameSync(tmp, file);
}

/** Remove the pidfile only if it still names us (a newer server may have taken it over). */
export function removePidfile(file: string, pid = process.pid): void {
  try {
    if (fs.readFileSync(file, 'utf8').trim() === String(pid)) fs.unlinkSync(file);
  } catch {
    // already gone
  }
}
