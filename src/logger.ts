// nserve's logger: one event per line, JSON by default (the line pino writes: log-line.ts), or pretty or
// logfmt made from that line; written synchronously to descriptor 1 (or 2) through a SafeDestination.
// The API is the part of pino's nserve uses: `log.info(fields, msg)`, `log.info(msg)`, levels, `child`.
import { createRequire } from 'node:module';
import { bindingsText, eventLine, LEVEL_LABELS, LEVEL_VALUES, type LevelWithSilent } from './log-line.js';
import { onRecovery, SafeDestination } from './safe-destination.js';

export type { Level, LevelWithSilent } from './log-line.js';
export { droppedLogLines, type LostLines, SafeDestination } from './safe-destination.js';
export { onStdioReopened, redirectStdio, reopenRedirectedStdio, stdioRedirected } from './stdio-redirect.js';

export const LOG_LEVELS: readonly LevelWithSilent[] = [
  'fatal',
  'error',
  'warn',
  'info',
  'debug',
  'trace',
  'silent',
];

export type LogFormat = 'json' | 'pretty' | 'logfmt';
export const LOG_FORMATS: readonly LogFormat[] = ['json', 'pretty', 'logfmt'];

/** One level's method: `(fields, msg)` (an Error as `fields` is logged as `err`) or `(msg)`. */
export interface LogFn {
  (fields: object | null | undefined, msg?: string): void;
  (msg: string): void;
}

export interface Logger {
  /** The threshold: events below it are not written. */
  level: LevelWithSilent;
  fatal: LogFn;
  error: LogFn;
  warn: LogFn;
  info: LogFn;
  debug: LogFn;
  trace: LogFn;
  isLevelEnabled(level: LevelWithSilent): boolean;
  /** A logger that adds `bindings` to every line (after this one's). */
  child(bindings: Record<string, unknown>): Logger;
  /** Lines are written synchronously: nothing to flush (kept for pino's API). */
  flush(): void;
}

export interface LoggerOptions {
  level: LevelWithSilent;
  /** Fields on every line, e.g. `{ role: 'worker', worker: 2 }`. */
  base?: Record<string, unknown>;
  /** The line format; defaults to `setDefaultLogFormat`'s, else pretty on a terminal and JSON otherwise. */
  format?: LogFormat;
  /** The descriptor written to (default 1; 2 for the app's tagged stderr lines). */
  fd?: number;
}

/** The format of every logger created from now on in this process (`--log-format`, set once by the CLI). */
let defaultFormat: LogFormat | undefined;
export function setDefaultLogFormat(format: LogFormat | undefined): void {
  defaultFormat = format;
}

/**
 * Logs are written synchronously, in-process: an `execve` (hot restart) must not lose lines, so there is
 * no transport thread. Pretty and logfmt lines are made from the JSON line by a formatter called in
 * `SafeDestination.write` (pino-pretty's `prettyFactory`, the `logfmt` package's `stringify`), loaded only
 * when that format is chosen.
 *
 * Writes go through a `SafeDestination`: a log line that cannot be written (a full disk under
 * `--redirect-stdout`, a reader gone) is dropped and counted, never thrown: logging must not take the site
 * down, and a server must be able to start on a full disk.
 */
export function createLogger(options: LoggerOptions): Logger {
  const format = options.format ?? defaultFormat ?? (process.stdout.isTTY === true ? 'pretty' : 'json');
  const destination = new SafeDestination(options.fd ?? 1, lineFormatter(format));
  const log = new LineLogger(options.level, bindingsText({ pid: process.pid, ...options.base }), destination);
  onRecovery((fd, lost) =>
    // Deferred: the line that went through may be in the middle of being written.
    setImmediate(() =>
      log.warn(
        { fd, droppedLines: lost.lines, code: lost.code, since: new Date(lost.since).toISOString() },
        `${lost.lines} output line(s) could not be written (${lost.code}) and were dropped; writing works again`,
      ),
    ),
  );
  return log;
}

class LineLogger implements Logger {
  private threshold: number;

  constructor(
    private levelName: LevelWithSilent,
    private readonly bindings: string,
    private readonly destination: SafeDestination,
  ) {
    this.threshold = LEVEL_VALUES[levelName];
  }

  get level(): LevelWithSilent {
    return this.levelName;
  }

  set level(level: LevelWithSilent) {
    if (!(level in LEVEL_VALUES)) throw new Error(`unknown level ${String(level)}`);
    this.levelName = level;
    this.threshold = LEVEL_VALUES[level];
  }

  readonly fatal = this.method(60);
  readonly error = this.method(50);
  readonly warn = this.method(40);
  readonly info = this.method(30);
  readonly debug = this.method(20);
  readonly trace = this.method(10);

  isLevelEnabled(level: LevelWithSilent): boolean {
    return level !== 'silent' && LEVEL_VALUES[level] >= this.threshold;
  }

  child(bindings: Record<string, unknown>): Logger {
    return new LineLogger(this.levelName, this.bindings + bindingsText(bindings), this.destination);
  }

  flush(): void {}

  private method(level: number): LogFn {
    // pino's argument rules: an object (or null) first is the fields, and the message follows; anything
    // else first is the message.
    return (...args: unknown[]): void => {
      if (level < this.threshold) return;
      const [first, second] = args;
      const line =
        typeof first === 'object'
          ? eventLine(level, this.bindings, first, first === null && args.length === 1 ? null : second)
          : eventLine(level, this.bindings, null, first === undefined ? second : first);
      this.destination.write(line);
    };
  }
}

/** Turns one JSON line into the chosen format (undefined: keep the JSON). */
export function lineFormatter(format: LogFormat): ((line: string) => string) | undefined {
  if (format === 'json') return undefined;
  const require = createRequire(import.meta.url);
  if (format === 'logfmt') {
    const logfmt = require('logfmt') as typeof import('logfmt');
    return (line) => `${logfmt.stringify(logfmtFields(JSON.parse(line) as Record<string, unknown>))}\n`;
  }
  // Loaded only when asked for: it costs ~20 ms of start-up, which a hot restart waits for.
  const pretty = require('pino-pretty') as typeof import('pino-pretty');
  const prettify = pretty.prettyFactory({
    colorize: process.stdout.isTTY === true && process.env.NO_COLOR === undefined,
    // One line per event: time, level, who (role and worker), message, then the other fields as JSON.
    singleLine: true,
    errorLikeObjectKeys: [],
    translateTime: 'SYS:HH:MM:ss.l',
    ignore: 'pid,hostname',
  });
  return (line) => prettify(prettyFields(JSON.parse(line) as Record<string, unknown>));
}

/**
 * The message prefixed with who logged it (`master`, `single`, `worker 2`); a worker's own index and phase
 * are in that prefix, while a master line's `worker` field (the worker it is about) stays a field.
 */
function prettyFields(log: Record<string, unknown>): Record<string, unknown> {
  const { role, msg, ...rest } = log;
  const out: Record<string, unknown> = rest;
  let who = typeof role === 'string' ? role : 'nserve';
  if (role === 'worker') {
    who = `worker ${String(rest.worker)}`;
    delete out.worker;
    delete out.phase;
  }
  out.msg = `${who}: ${String(msg ?? '')}`;
  if (out.err !== undefined) out.err = errorLine(out.err) ?? out.err;
  return out;
}

/** pino's serialized error reduced to `Type: message (at file:line:col)`, so a pretty event stays one line. */
function errorLine(err: unknown): string | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  const e = err as { type?: unknown; message?: unknown; stack?: unknown; code?: unknown };
  const frame =
    typeof e.stack === 'string' ? /^\s+at (?:.*\()?(.+?:\d+:\d+)\)?$/m.exec(e.stack)?.[1] : undefined;
  const type = typeof e.type === 'string' ? e.type : 'Error';
  const firstLine = String(e.message ?? '').split('\n')[0];
  return `${type}: ${firstLine}${frame === undefined ? '' : ` (at ${frame})`}`;
}

/** The fields of a logfmt line: time, level, role, worker, msg first; nested values as JSON; no newlines. */
export function logfmtFields(log: Record<string, unknown>): Record<string, string | number | boolean> {
  const { time, level, role, worker, msg, ...rest } = log;
  const out: Record<string, string | number | boolean> = {};
  const put = (k: string, v: unknown): void => {
    if (v === undefined || v === null) return;
    if (typeof v === 'number' || typeof v === 'boolean') out[k] = v;
    else if (typeof v === 'string') out[k] = v.replace(/\r?\n/g, '\\n');
    else out[k] = JSON.stringify(v);
  };
  put('time', time);
  put('level', typeof level === 'number' ? (LEVEL_LABELS[level] ?? level) : level);
  put('role', role);
  put('worker', worker);
  put('msg', msg);
  for (const [k, v] of Object.entries(rest)) {
    if (k === 'hostname') continue;
    put(k, k === 'err' ? (errorLine(v) ?? v) : v);
  }
  return out;
}
