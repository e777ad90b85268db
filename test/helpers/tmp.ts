// Temporary directories that go away with the test that made them (no side effects on import: the bench
// uses releases.ts, which uses this).
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

/** What a test registers cleanups with (node:test's TestContext). */
export interface Cleanup {
  after(fn: () => unknown): void;
}

/** A new temporary directory, removed with everything in it at the end of the test `t`. */
export function tmpDir(t: Cleanup, prefix = 'nserve-test-'): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  // A server the test started may still be writing into it until its own after hook stops it (hooks
  // run in the order they were registered): try now, and once more a little later if it was not empty.
  t.after(() => {
    try {
      fs.rmSync(dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 50 });
    } catch {
      setTimeout(() => fs.rmSync(dir, { recursive: true, force: true, maxRetries: 5 }), 3000).unref();
    }
  });
  return dir;
}
