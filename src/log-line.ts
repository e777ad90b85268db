// One log event as one JSON line, byte for byte the line pino 10 writes with nserve's options (base
// `{pid, ...}`, ISO time, `err` through pino-std-serializers' error serializer, `msg` last): nserve used
// pino, and operators' log pipelines parse these lines. Written here instead of loading pino because
// pino and its dependencies (sonic-boom, thread-stream, worker_threads, ...) cost every nserve process
// ~7 MB of memory and tens of milliseconds of start-up, and nserve uses none of what they add: its lines
// are written synchronously by `SafeDestination` (logger.ts). test/unit/log-line.test.ts compares the
// lines with pino's own.
import { createRequire } from 'node:module';

export type Level = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace';
export type LevelWithSilent = Level | 'silent';

/** pino's level numbers. */
export const LEVEL_VALUES: Readonly<Record<LevelWithSilent, number>> = {
  fatal: 60,
  error: 50,
  warn: 40,
  info: 30,
  debug: 20,
  trace: 10,
  silent: Number.POSITIVE_INFINITY,
};

/** Number → label (`30` → `info`), as `pino.levels.labels`. */
export const LEVEL_LABELS: Readonly<Record<number, Level>> = {
  60: 'fatal',
  50: 'error',
  40: 'warn',
  30: 'info',
  20: 'debug',
  10: 'trace',
};

/** Keys a binding may not set (pino skips them). */
const RESERVED_BINDINGS = new Set(['level', 'serializers', 'formatters', 'customLevels']);

/** The `,"key":value` text of bindings (base fields, a child's fields), which every line repeats. */
export function bindingsText(bindings: Record<string, unknown>): string {
  let text = '';
  for (const key in bindings) {
    if (!Object.hasOwn(bindings, key) || RESERVED_BINDINGS.has(key)) continue;
    let value = bindings[key];
    if (value === undefined) continue;
    if (key === 'err') value = serializeError(value);
    const json = stringify(value);
    if (json === undefined) continue;
    text += `,${asString(key)}:${json}`;
  }
  return text;
}

/**
 * The line of one event: `{"level":30,"time":"…"<bindings><fields>,"msg":"…"}\n`. `fields` and `msg` as
 * a pino log method received them: an Error as `fields` becomes `{err}` and lends its message, so does
 * an `err` field when there is no message.
 */
export function eventLine(level: number, bindings: string, fields: unknown, message: unknown): string {
  let obj: object;
  let msg = message;
  if (fields === undefined || fields === null) obj = {};
  else if (fields instanceof Error) {
    obj = { err: fields };
    if (msg === undefined) msg = fields.message;
  } else {
    obj = fields as object;
    const o = obj as { msg?: unknown; err?: { message?: unknown } };
    if (msg === undefined && o.msg === undefined && o.err) msg = o.err.message;
  }
  let line = `{"level":${level},"time":"${new Date().toISOString()}"${bindings}`;
  const record = obj as Record<string, unknown>;
  for (const key in record) {
    if (!Object.hasOwn(record, key)) continue;
    let value = record[key];
    if (value === undefined) continue;
    if (key === 'err') value = serializeError(value);
    const json = valueText(value);
    if (json === undefined) continue;
    line += `,${asString(key)}:${json}`;
  }
  if (msg !== undefined && typeof msg !== 'function') line += `,"msg":${valueText(msg) ?? 'undefined'}`;
  return `${line}}\n`;
}

function valueText(value: unknown): string | undefined {
  switch (typeof value) {
    case 'undefined':
    case 'function':
      return undefined;
    case 'number':
      return Number.isFinite(value) ? String(value) : 'null';
    case 'boolean':
      return String(value);
    case 'string':
      return asString(value);
    default:
      return stringify(value);
  }
}

/**
 * pino's string escaping: short strings only escape `"` and `\` unless they hold a control character
 * (then, like long strings, JSON.stringify). Kept as pino has it, lone surrogates included.
 */
function asString(str: string): string {
  if (str.length > 100) return JSON.stringify(str);
  let result = '';
  let last = 0;
  let found = false;
  let point = 255;
  let i = 0;
  for (; i < str.length && point >= 32; i++) {
    point = str.charCodeAt(i);
    if (point === 34 || point === 92) {
      result += `${str.slice(last, i)}\\`;
      last = i;
      found = true;
    }
  }
  result = found ? result + str.slice(last) : str;
  return point < 32 ? JSON.stringify(str) : `"${result}"`;
}

type SafeStringify = (value: unknown) => string | undefined;
let safeStringify: SafeStringify | undefined;

/** JSON.stringify, and for what it cannot do (cycles, BigInt) pino's fallback, loaded only then. */
function stringify(value: unknown): string | undefined {
  try {
    return JSON.stringify(value) as string | undefined;
  } catch {
    try {
      if (safeStringify === undefined) {
        const require = createRequire(import.meta.url);
        const { configure } = require('safe-stable-stringify') as typeof import('safe-stable-stringify');
        safeStringify = configure({ maximumDepth: 5, maximumBreadth: 100 }) as SafeStringify;
      }
      return safeStringify(value);
    } catch {
      return '"[unable to serialize, circular reference is too complex to analyze]"';
    }
  }
}

// ── pino-std-serializers' `err` ──────────────────────────────────────────────────────────────────────
// {type, message (with its causes'), stack (with its causes'), aggregateErrors?, ...other enumerable
// properties}; nested error-like values serialized the same way, except `cause` and cycles.

interface ErrorLike {
  message: string;
  stack?: unknown;
  cause?: unknown;
  name?: unknown;
  errors?: unknown;
  constructor?: unknown;
}

const isErrorLike = (err: unknown): err is ErrorLike =>
  Boolean(err) && typeof (err as { message?: unknown }).message === 'string';

/** The errors being serialized (pino tags them with a symbol for the same purpose). */
const inProgress = new Set<object>();

function serializeError(err: unknown): unknown {
  if (!isErrorLike(err)) return err;
  inProgress.add(err);
  try {
    const out: Record<string, unknown> = {
      type:
        Object.prototype.toString.call(err.constructor) === '[object Function]'
          ? (err.constructor as { name: unknown }).name
          : err.name,
      message: withCauses(err, new Set(), false, messagePart),
      stack: withCauses(err, new Set(), false, stackPart),
    };
    if (Array.isArray(err.errors)) out.aggregateErrors = err.errors.map((e: unknown) => serializeError(e));
    const record = err as unknown as Record<string, unknown>;
    for (const key in record) {
      // pino's serialized error has a non-enumerable `raw` (the error itself): never copied.
      if (out[key] !== undefined || key === 'raw') continue;
      const val = record[key];
      if (isErrorLike(val)) {
        if (key !== 'cause' && !inProgress.has(val)) out[key] = serializeError(val);
      } else out[key] = val;
    }
    return out;
  } finally {
    inProgress.delete(err);
  }
}

function causeOf(err: ErrorLike): ErrorLike | undefined {
  const cause = typeof err.cause === 'function' ? (err.cause as () => unknown)() : err.cause;
  return isErrorLike(cause) ? cause : undefined;
}

type Part = (err: ErrorLike, skip: boolean) => string;
const messagePart: Part = (err, skip) => (skip ? '' : err.message || '');
const stackPart: Part = (err) => (typeof err.stack === 'string' ? err.stack : '') || '';

/** pony-cause's messageWithCauses / stackWithCauses, as pino-std-serializers has them. */
function withCauses(err: ErrorLike, seen: Set<ErrorLike>, skip: boolean, part: Part): string {
  const text = part(err, skip);
  const isMessage = part === messagePart;
  if (seen.has(err)) return text + (isMessage ? ': ...' : '\ncauses have become circular...');
  const cause = causeOf(err);
  if (cause === undefined) return text;
  seen.add(err);
  if (!isMessage) return `${text}\ncaused by: ${withCauses(cause, seen, false, part)}`;
  const vErrorStyle = typeof err.cause === 'function';
  return text + (vErrorStyle ? '' : ': ') + withCauses(cause, seen, vErrorStyle, part);
}
