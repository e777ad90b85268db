// --tag-output: the app's own stdout and stderr lines become log events of the process that wrote them
// (`worker 1: <line>` in pretty, `{"role":"worker","worker":1,"stream":"stdout","msg":"<line>"}` in JSON),
// in the chosen log format, on the same descriptor (stdout lines on 1, stderr lines on 2).
//
// Done inside the process that runs the app, by wrapping process.stdout/stderr.write: the master stays
// out of the data path (no pipes to read, nothing to hand over across its exec). What it does not see:
// output written to descriptors 1 and 2 directly (fs.writeSync(1), a child process with inherited stdio).
//
// A line ends at LF, CR or CRLF: a bare CR (a progress bar) takes a terminal back to column 0, and the text
// after it would overwrite the tag, so it gets a tagged line of its own. The bytes in a line are the
// app's, colours included: kept as written (logger.ts does not escape a line with a `stream` field).
import type { Logger } from './logger.js';

/** Longest partial line kept while waiting for its newline; longer ones are logged as they are. */
const MAX_PENDING = 64 * 1024;

type WriteCallback = (err?: Error | null) => void;

export function tagOutput(loggers: { stdout: Logger; stderr: Logger }): void {
  const streams = [
    [process.stdout, loggers.stdout, 'stdout'],
    [process.stderr, loggers.stderr, 'stderr'],
  ] as const;
  for (const [stream, log, name] of streams) {
    let pending = '';
    // (A CR can end a line only when output stops after it: at exit, or a very long line.)
    const emit = (line: string): void =>
      log.info({ stream: name }, line.endsWith('\r') ? line.slice(0, -1) : line);
    const write = (chunk: unknown, encoding?: unknown, callback?: unknown): boolean => {
      const text =
        typeof chunk === 'string'
          ? chunk
          : Buffer.from(chunk as Uint8Array).toString(
              typeof encoding === 'string' ? (encoding as BufferEncoding) : 'utf8',
            );
      pending += text;
      for (let end = lineEnd(pending); end !== undefined; end = lineEnd(pending)) {
        emit(pending.slice(0, end.at));
        pending = pending.slice(end.next);
      }
      if (pending.length > MAX_PENDING) {
        emit(pending);
        pending = '';
      }
      const cb = typeof encoding === 'function' ? encoding : callback;
      if (typeof cb === 'function') process.nextTick(cb as WriteCallback);
      return true;
    };
    stream.write = write as typeof stream.write;
    // A last line without its newline is still said.
    process.on('exit', () => {
      if (pending !== '') emit(pending);
      pending = '';
    });
  }
}

/**
 * Where the first line of `text` ends (LF, CRLF or a bare CR) and where the next one starts; undefined
 * when no line is complete yet (a CR at the very end may be the first half of a CRLF split across writes).
 */
export function lineEnd(text: string): { at: number; next: number } | undefined {
  const m = /\r\n|\r(?!$)|\n/.exec(text);
  return m === null ? undefined : { at: m.index, next: m.index + m[0].length };
}
