// How an nserve command ends when it fails: a usage error is one line and exit code 2, anything else
// `nserve: fatal: <stack>` and exit code 1. Shared by the commander program (main.ts) and the lean
// `start` entry (start-entry.ts), so both end the same way.
import * as fs from 'node:fs';
import { NserveError } from '../errors.js';

export const EXIT_USAGE = 2;

/** nserve's own last words go to descriptor 2 directly: never through a --tag-output wrapper. */
export function writeStderr(text: string): void {
  try {
    fs.writeSync(2, text);
  } catch {
    // stderr closed: nothing to tell
  }
}

export function reportFailure(err: unknown): never {
  if (err instanceof NserveError && err.usage) {
    writeStderr(`nserve: error: ${err.message}\n`);
    process.exit(EXIT_USAGE);
  }
  writeStderr(`nserve: fatal: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
}
