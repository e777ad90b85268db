// How an nserve command ends when it fails: a usage error is one line and exit code 2, anything else
// `nserve: fatal: <stack>` and exit code 1. Shared by the commander program (main.ts) and the lean
// `start` entry (start-entry.ts), so both end the same way.
import * as fs from 'node:fs';
import { NserveError } from '../errors.js';
import { escapeLines } from '../log/escape.js';

export const EXIT_USAGE = 2;

/** nserve's own last words go to descriptor 2 directly: never through a --tag-output wrapper. */
export function writeStderr(text: string): void {
  try {
    fs.writeSync(2, text);
  } catch {
    // stderr closed: nothing to tell
  }
}

/**
 * A message may carry the app's text (a load error's message, a worker's boot error): its control
 * characters are escaped and its continuation lines (a code frame, a stack) indented, so that nothing
 * in it can pass for a line of its own or drive the terminal (log/escape.ts).
 */
export function reportFailure(err: unknown): never {
  if (err instanceof NserveError && err.usage) {
    writeStderr(`nserve: error: ${escapeLines(err.message)}\n`);
    process.exit(err.exitCode ?? EXIT_USAGE);
  }
  writeStderr(
    `nserve: fatal: ${escapeLines(err instanceof Error ? (err.stack ?? err.message) : String(err))}\n`,
  );
  process.exit(1);
}
