// Where every log line (and, with --redirect-stdout/--redirect-stderr, the console output) is written: whole
// lines with write(2), never throwing. Logging must not take the site down, and a server must be able to
// start on a full disk: a line that cannot be written is dropped and counted.
import * as fs from 'node:fs';
import { errorCode } from './errors.js';

export interface LostLines {
  lines: number;
  /** errno code of the first failed write (ENOSPC, EPIPE, EIO, EAGAIN, ...). */
  code: string;
  /** Epoch ms of the first dropped line. */
  since: number;
}

/** How long one line may wait for a full pipe (EAGAIN) before it is dropped. */
const EAGAIN_PATIENCE_MS = 1000;
const sleeper = new Int32Array(new SharedArrayBuffer(4));

let totalDropped = 0;
/** The current failure episode of each descriptor (shared by the logger and console output on it). */
const episodes = new Map<number, LostLines>();
/** Reports the end of an episode; set by createLogger (the last logger created in this process). */
let reportRecovery: ((fd: number, lost: LostLines) => void) | undefined;
export function onRecovery(report: (fd: number, lost: LostLines) => void): void {
  reportRecovery = report;
}

/** A console line that could not be written (stdio-redirect.ts): counted with the logger's. */
export function countDroppedLine(): void {
  totalDropped++;
}

/** Lines this process dropped because they could not be written (logger and redirected console output). */
export function droppedLogLines(): number {
  return totalDropped;
}

/**
 * Writes whole lines with `write(2)` on a descriptor and never throws. Lines that cannot be written are
 * dropped and counted; the first line that goes through again ends the episode, which is reported (once)
 * through the logger. Descriptor 1 is written by number on every line, so a SIGHUP reopen (dup2 onto 1)
 * takes effect at once. This is the destination of every logger (master, single, workers).
 */
export class SafeDestination {
  constructor(
    private readonly fd: number,
    private readonly format?: (line: string) => string,
  ) {}

  write(line: string | Uint8Array): void {
    let data = line;
    if (this.format !== undefined && typeof line === 'string') {
      try {
        data = this.format(line);
      } catch {
        // keep the JSON line
      }
    }
    const failed = this.writeAll(typeof data === 'string' ? Buffer.from(data, 'utf8') : data);
    const episode = episodes.get(this.fd);
    if (failed !== undefined) {
      totalDropped++;
      if (episode === undefined) episodes.set(this.fd, { lines: 1, code: failed, since: Date.now() });
      else episode.lines++;
      return;
    }
    if (episode !== undefined) {
      episodes.delete(this.fd);
      reportRecovery?.(this.fd, episode);
    }
  }

  /** Undefined when the whole buffer was written, else the errno code that stopped it. */
  private writeAll(buf: Uint8Array): string | undefined {
    let off = 0;
    // While lines are being dropped, don't wait for a full pipe again: one stall per episode at most.
    let patience = episodes.has(this.fd) ? 0 : EAGAIN_PATIENCE_MS;
    while (off < buf.length) {
      try {
        off += fs.writeSync(this.fd, buf, off, buf.length - off);
      } catch (err) {
        const code = errorCode(err) ?? 'EIO';
        // Node leaves O_NONBLOCK on a piped stdout: a slow reader gives EAGAIN; wait a little for it.
        if (code === 'EAGAIN' && patience > 0) {
          Atomics.wait(sleeper, 0, 0, 5);
          patience -= 5;
          continue;
        }
        return code;
      }
    }
    return undefined;
  }
}
