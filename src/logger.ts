import { type LevelWithSilent, type Logger, pino } from 'pino';
import pretty from 'pino-pretty';

export type { Logger } from 'pino';

export const LOG_LEVELS: readonly LevelWithSilent[] = [
  'fatal',
  'error',
  'warn',
  'info',
  'debug',
  'trace',
  'silent',
];

export interface LoggerOptions {
  level: LevelWithSilent;
  /** Fields on every line, e.g. `{ role: 'worker', worker: 2 }`. */
  base?: Record<string, unknown>;
  /** Human-readable lines; defaults to whether stdout is a terminal. */
  pretty?: boolean;
}

/**
 * Logs are written synchronously, in-process: pino transports run in worker threads, and an `execve`
 * (hot restart) kills those threads with whatever they had not written yet.
 */
export function createLogger(options: LoggerOptions): Logger {
  const usePretty = options.pretty ?? process.stdout.isTTY === true;
  const base = { pid: process.pid, ...options.base };
  if (usePretty) {
    const stream = pretty({
      sync: true,
      colorize: true,
      ignore: 'hostname',
      translateTime: 'SYS:HH:MM:ss.l',
    });
    return pino({ level: options.level, base }, stream);
  }
  return pino(
    { level: options.level, base, timestamp: pino.stdTimeFunctions.isoTime },
    pino.destination({ fd: 1, sync: true }),
  );
}
