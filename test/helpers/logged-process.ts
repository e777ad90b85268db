// A child process whose stdout is read as JSON log lines (pino), with waits that name what they wait
// for and carry a deadline. The integration tests (test/helpers/server.ts) and the benchmark
// (bench/lib/proc.ts) both build on it; each adds its own way of tracking and ending processes.
import type { ChildProcess } from 'node:child_process';
import type { EventCode } from '../../src/log/events.js';

export type LogLine = Record<string, unknown> & { msg?: string; level?: number; pid?: number };

export interface ExitStatus {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** Whether a line names one of these events (src/log/events.ts): what tests assert, not a message's wording. */
export function isEvent(l: LogLine, ...events: EventCode[]): boolean {
  return (events as unknown[]).includes(l.event);
}

/** Monotonic milliseconds (performance.now()): the clock of log arrival times and load samples. */
export const now = (): number => performance.now();

export interface LoggedProcessOptions {
  /** Copy every line to our stderr when this environment variable is set (e.g. NSERVE_TEST_VERBOSE). */
  echoEnv?: string;
  /** Keep only the last N characters of the child's stderr (default: all of it). */
  stderrLimit?: number;
}

interface Waiter {
  pred: (l: LogLine) => boolean;
  resolve: (l: LogLine) => void;
  reject: (err: Error) => void;
}

/** A JSON object line as it is; anything else (text, a bare JSON value) as `{ msg, raw: true }`. */
function parseLine(raw: string): LogLine {
  try {
    const v: unknown = JSON.parse(raw);
    if (typeof v === 'object' && v !== null && !Array.isArray(v)) return v as LogLine;
  } catch {
    // not JSON
  }
  return { msg: raw, raw: true };
}

export class LoggedProcess {
  readonly lines: LogLine[] = [];
  stderr = '';
  readonly exited: Promise<ExitStatus>;
  exitStatus: ExitStatus | undefined;
  private waiters: Waiter[] = [];
  private readonly arrival = new WeakMap<LogLine, number>();
  private stdoutEnded = false;

  constructor(
    readonly child: ChildProcess,
    options: LoggedProcessOptions = {},
  ) {
    const echo = options.echoEnv !== undefined && process.env[options.echoEnv] !== undefined;
    let buf = '';
    child.stdout?.setEncoding('utf8');
    child.stdout?.on('data', (chunk: string) => {
      buf += chunk;
      for (let nl = buf.indexOf('\n'); nl !== -1; nl = buf.indexOf('\n')) {
        const raw = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        const line = parseLine(raw);
        this.arrival.set(line, now());
        this.lines.push(line);
        if (echo) process.stderr.write(`[${child.pid}] ${raw}\n`);
        this.waiters = this.waiters.filter((w) => {
          if (!w.pred(line)) return true;
          w.resolve(line);
          return false;
        });
      }
    });
    // Once stdout has ended no line can come any more: a wait still open has failed, say so now rather
    // than at its deadline. ('exit' can come before the last lines are read, so it is not the signal.)
    child.stdout?.on('end', () => {
      this.stdoutEnded = true;
      for (const w of this.waiters.splice(0)) w.reject(this.endedError());
    });
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (chunk: string) => {
      this.stderr += chunk;
      if (options.stderrLimit !== undefined) this.stderr = this.stderr.slice(-options.stderrLimit);
      if (echo) process.stderr.write(`[${child.pid}:err] ${chunk}`);
    });
    this.exited = new Promise((resolve) =>
      child.once('exit', (code, signal) => {
        this.exitStatus = { code, signal };
        resolve({ code, signal });
      }),
    );
  }

  get pid(): number {
    return this.child.pid!;
  }

  /** When (now()) a line was read from the child's stdout. */
  receivedAt(line: LogLine): number {
    return this.arrival.get(line) ?? Number.NaN;
  }

  signal(sig: NodeJS.Signals): void {
    process.kill(this.pid, sig);
  }

  /** The last lines and stderr, for a failure message. */
  tail(lines = 15): string {
    return `stderr: ${this.stderr.slice(-2000)}\nlast lines:\n${this.lines
      .slice(-lines)
      .map((l) => JSON.stringify(l).slice(0, 400))
      .join('\n')}`;
  }

  private endedError(): Error {
    const st = this.exitStatus;
    return new Error(
      `process ${this.pid}'s output ended (${st === undefined ? 'still exiting' : `exit ${st.signal ?? st.code}`}) while waiting\n${this.tail()}`,
    );
  }

  /**
   * Wait for a log line matching `pred` (lines already read count, from index `from`). Rejects after
   * `deadlineMs`, or as soon as the child's output ends.
   */
  waitForLog(what: string, pred: (l: LogLine) => boolean, deadlineMs = 15_000, from = 0): Promise<LogLine> {
    const seen = this.lines.slice(from).find(pred);
    if (seen !== undefined) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const fail = (err: Error): void => {
        clearTimeout(timer);
        this.waiters = this.waiters.filter((w) => w !== waiter);
        reject(new Error(`waiting for log: ${what}: ${err.message}`));
      };
      const timer = setTimeout(
        () => fail(new Error(`no such line within ${deadlineMs} ms\n${this.tail()}`)),
        deadlineMs,
      );
      const waiter: Waiter = {
        pred,
        resolve: (l) => {
          clearTimeout(timer);
          resolve(l);
        },
        reject: fail,
      };
      if (this.stdoutEnded) fail(this.endedError());
      else this.waiters.push(waiter);
    });
  }

  /** Wait for a line whose msg is `msg` (a string: exactly; a RegExp: matching). */
  waitForMsg(msg: string | RegExp, deadlineMs = 15_000, from = 0): Promise<LogLine> {
    const match = (l: LogLine): boolean =>
      typeof msg === 'string' ? l.msg === msg : msg.test(String(l.msg ?? ''));
    return this.waitForLog(String(msg), match, deadlineMs, from);
  }

  /** Wait for a line naming `event` (src/log/events.ts) that also satisfies `where`, if given. */
  waitForEvent(
    event: EventCode,
    deadlineMs = 15_000,
    from = 0,
    where: (l: LogLine) => boolean = () => true,
  ): Promise<LogLine> {
    return this.waitForLog(`event ${event}`, (l) => l.event === event && where(l), deadlineMs, from);
  }

  async waitExit(deadlineMs = 15_000): Promise<ExitStatus> {
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`process ${this.pid} did not exit within ${deadlineMs} ms\n${this.tail()}`)),
        deadlineMs,
      );
    });
    try {
      return await Promise.race([this.exited, deadline]);
    } finally {
      clearTimeout(timer);
    }
  }
}

/**
 * Poll `fn` until it returns something other than undefined/false; throws, naming `what`, once
 * `deadlineMs` has passed. Errors thrown by `fn` are not swallowed: they fail the wait at once.
 */
export async function until<T>(
  what: string,
  fn: () => T | undefined | false | Promise<T | undefined | false>,
  deadlineMs = 10_000,
  everyMs = 50,
): Promise<T> {
  const deadline = now() + deadlineMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined && v !== false) return v;
    if (now() > deadline) throw new Error(`timed out after ${deadlineMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
