import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import type { LevelWithSilent, Logger } from 'pino';
import { errorCode } from '../errors.js';
import { escapeControl, escapeJsonLine } from './escape.js';
import { logEvent } from './events.js';

export type { Logger } from 'pino';

/**
 * pino, loaded on first use rather than with this module: its ~30 CommonJS files were most of the ~20 ms
 * of CPU a worker no longer spends before the app's first line (docs/benchmarks.md). A worker makes its logger
 * while the app loads (`deferredLogger`); every other role makes one at once and loads it then.
 */
let pinoModule: typeof import('pino') | undefined;
function loadPino(): typeof import('pino') {
  pinoModule ??= createRequire(import.meta.url)('pino') as typeof import('pino');
  return pinoModule;
}

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

export interface LoggerOptions {
  level: LevelWithSilent;
  /** Fields on every line, e.g. `{ role: 'worker', worker: 2 }`. */
  base?: Record<string, unknown>;
  /** The line format; defaults to `setDefaultLogFormat`'s, else pretty on a terminal and JSON otherwise. */
  format?: LogFormat;
  /** The descriptor written to (default 1; 2 for the app's tagged stderr lines). */
  fd?: 1 | 2;
}

/** The format of every logger created from now on in this process (`--log-format`, set once by the CLI). */
let defaultFormat: LogFormat | undefined;
export function setDefaultLogFormat(format: LogFormat | undefined): void {
  defaultFormat = format;
}

/**
 * Logs are written synchronously, in-process: pino transports run in worker threads, and an `execve`
 * (hot restart) kills those threads with whatever they had not written yet. So pretty and logfmt lines
 * are made from pino's JSON line by a formatter called in `SafeDestination.write` (pino-pretty's
 * `prettyFactory`, the `logfmt` package's `stringify`), not by a transport.
 *
 * Writes go through a `SafeDestination`: a log line that cannot be written (a full disk under
 * `--redirect-stdout`, a reader gone) is dropped and counted, never thrown: logging must not take the site
 * down, and a server must be able to start on a full disk.
 */
export function createLogger(options: LoggerOptions): Logger {
  const format = options.format ?? defaultFormat ?? (process.stdout.isTTY === true ? 'pretty' : 'json');
  const base = { pid: process.pid, ...options.base };
  const { pino } = loadPino();
  const log = pino(
    { level: options.level, base, timestamp: pino.stdTimeFunctions.isoTime },
    new SafeDestination(options.fd ?? 1, lineFormatter(format)),
  );
  reportRecovery = (fd, lost) =>
    // Deferred: pino may be in the middle of writing the line that went through.
    setImmediate(() =>
      logEvent(
        log,
        'log.lines.dropped',
        { fd, droppedLines: lost.lines, code: lost.code, since: new Date(lost.since).toISOString() },
        `${lost.lines} output line(s) could not be written (${lost.code}) and were dropped; writing works again`,
      ),
    );
  return log;
}

/**
 * A logger made on its first use, or by `make()` once the caller has a moment to spare: a worker calls
 * `make()` while its app loads, so that neither pino nor the logger stands before the app's first line.
 */
export function deferredLogger(options: LoggerOptions): { log: Logger; make: () => Logger } {
  let real: Logger | undefined;
  const make = (): Logger => {
    real ??= createLogger(options);
    return real;
  };
  const log = new Proxy({} as Logger, {
    get: (_, key) => {
      const target = make();
      const value = Reflect.get(target, key, target) as unknown;
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
    set: (_, key, value) => Reflect.set(make(), key, value),
  });
  return { log, make };
}

/**
 * Turns one pino JSON line into the chosen format. Every format keeps one event on one line and lets no
 * control character from app text (an exception's message, a leaving reason, a request path) through
 * raw: JSON escapes C0 itself and DEL, C1 and U+2028/2029 are escaped on top; logfmt and pretty escape
 * them all in the values (escape.ts). The one exception is the app's own output under --tag-output
 * (a `stream` field): its bytes, colours included, are the app's, already cut into lines.
 */
export function lineFormatter(format: LogFormat): (line: string) => string {
  if (format === 'json') return escapeJsonLine;
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
  // pino-pretty writes the message as it is and the other fields as JSON (C0 escaped, C1 not): the
  // message is escaped first and C1 afterwards (its colours are ESC + ASCII, never C1).
  return (line) => {
    const log = JSON.parse(line) as Record<string, unknown>;
    if (!isAppOutput(log)) return escapeJsonLine(prettify(prettyFields(log)));
    // pino-pretty strips control characters from a message, colours included: the app's line goes in
    // after it, in place of a private-use placeholder (the first one: time and level come before it).
    const text = String(log.msg ?? '');
    return escapeJsonLine(prettify(prettyFields({ ...log, msg: APP_TEXT }))).replace(APP_TEXT, () => text);
  };
}

const APP_TEXT = '\ue000';

/** A tagged line of the app's own output (tag-output.ts): its text is kept as the app wrote it. */
function isAppOutput(log: Record<string, unknown>): boolean {
  return log.stream === 'stdout' || log.stream === 'stderr';
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
  const text = String(msg ?? '');
  out.msg = `${who}: ${isAppOutput(log) ? text : escapeControl(text)}`;
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
  return escapeControl(`${type}: ${firstLine}${frame === undefined ? '' : ` (at ${frame})`}`);
}

/** pino's level numbers → names (30 → info), looked up when a logfmt line is made (pino is loaded then). */
const levelLabel = (n: number): string | undefined =>
  (loadPino().pino.levels.labels as Record<number, string>)[n];

/**
 * The fields of a logfmt line: time, level, role, worker, msg first; nested values as JSON; control
 * characters escaped (`\n`, `\x1b`), except in a tagged line of the app's own output (its CR and LF
 * are line breaks already cut by tag-output.ts, its colours kept).
 */
export function logfmtFields(log: Record<string, unknown>): Record<string, string | number | boolean> {
  const { time, level, role, worker, msg, ...rest } = log;
  const out: Record<string, string | number | boolean> = {};
  const put = (k: string, v: unknown): void => {
    if (v === undefined || v === null) return;
    if (typeof v === 'number' || typeof v === 'boolean') out[k] = v;
    else if (typeof v === 'string') out[k] = k === 'msg' && isAppOutput(log) ? v : escapeControl(v);
    else out[k] = escapeJsonLine(JSON.stringify(v));
  };
  put('time', time);
  put('level', typeof level === 'number' ? (levelLabel(level) ?? level) : level);
  put('role', role);
  put('worker', worker);
  put('msg', msg);
  for (const [k, v] of Object.entries(rest)) {
    if (k === 'hostname') continue;
    put(k, k === 'err' ? (errorLine(v) ?? v) : v);
  }
  return out;
}

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

/** A line dropped outside a SafeDestination (a console stream's error): counted with the others. */
export function countDropped(): void {
  totalDropped++;
}
/** The current failure episode of each descriptor (shared by the logger and console output on it). */
const episodes = new Map<number, LostLines>();
/** Reports the end of an episode; set by createLogger (the last logger created in this process). */
let reportRecovery: ((fd: number, lost: LostLines) => void) | undefined;

/** Lines this process dropped because they could not be written (logger and redirected console output). */
export function droppedLogLines(): number {
  return totalDropped;
}

/**
 * Writes whole lines with `write(2)` on a descriptor and never throws. Lines that cannot be written are
 * dropped and counted; the first line that goes through again ends the episode, which is reported (once)
 * through the logger. Descriptor 1 is written by number on every line, so a SIGHUP reopen (dup2 onto 1)
 * takes effect at once. This is the pino destination of every logger (master, single, workers).
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
        // keep the JSON line (its control characters escaped as JSON's)
        data = escapeJsonLine(line);
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
