// --tag-output: the app's own stdout and stderr lines become log events of the process that wrote them
// (`worker 1: <line>` in pretty, `{"role":"worker","worker":1,"stream":"stdout","msg":"<line>"}` in JSON),
// in the chosen log format, on the same descriptor (stdout lines on 1, stderr lines on 2).
//
// Done inside the process that runs the app, by wrapping process.stdout/stderr.write: the master stays
// out of the data path (no pipes to read, nothing to hand over across its exec). What it does not see:
// output written to descriptors 1 and 2 directly (fs.writeSync(1), a child process with inherited stdio).
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
      for (let nl = pending.indexOf('\n'); nl !== -1; nl = pending.indexOf('\n')) {
        emit(pending.slice(0, nl));
        pending = pending.slice(nl + 1);
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
