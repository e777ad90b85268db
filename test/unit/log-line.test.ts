// nserve's JSON log lines are byte for byte pino's (src/log-line.ts): the same calls through pino 10 (a
// dev dependency, only here) and through createLogger give the same lines, times aside.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { pino } from 'pino';
import { createLogger, type Logger } from '../../src/logger.js';

type Call = (log: Logger) => void;

// Each call makes its errors anew: without frames, their stacks are the same text in both runs.
Error.stackTraceLimit = 0;

class CodedError extends Error {
  code = 'ERR_X';
  errno = -98;
  detail = { nested: [1, 'two'] };
}

const cyclic: Record<string, unknown> = { a: 1 };
cyclic.self = cyclic;
const selfRef = new Error('self');
(selfRef as Error & { again?: unknown }).again = selfRef;
const vError = new Error('outer');
(vError as Error & { cause?: unknown }).cause = () => new Error('inner');

const CALLS: [string, Call][] = [
  ['message only', (l) => l.info('hello')],
  ['fields and message', (l) => l.info({ worker: 2, generation: 3, pauseMs: 13.5 }, 'hot restart: done')],
  ['fields only', (l) => l.warn({ fd: 1, droppedLines: 4 })],
  ['quotes, backslashes, control characters', (l) => l.info({ p: 'a"b\\c', t: 'tab\there' }, 'say "hi"\n')],
  ['long string', (l) => l.info({ s: 'x"'.repeat(80) }, 'y\\'.repeat(70))],
  ['unicode', (l) => l.info({ s: 'é ✓ \u2028 😀' }, 'ünï')],
  [
    'non-finite numbers, booleans, null, undefined, functions',
    (l) =>
      l.info(
        { a: Number.NaN, b: Number.POSITIVE_INFINITY, c: -0, d: true, e: null, f: undefined, g: () => 1 },
        'n',
      ),
  ],
  ['nested objects and arrays', (l) => l.info({ o: { x: [1, { y: 'z' }], u: undefined }, list: ['a'] }, 'n')],
  ['bigint and a cycle (pino falls back to safe-stable-stringify)', (l) => l.info({ big: 10n, cyclic }, 'c')],
  ['an Error as fields', (l) => l.error(new TypeError('bad thing'))],
  ['an Error as fields, with a message', (l) => l.error(new TypeError('bad thing'), 'it failed')],
  ['err field without message', (l) => l.error({ err: new CodedError('coded') })],
  [
    'err field with message and more fields',
    (l) => l.error({ code: 'ERR_NSERVE_X', err: new CodedError('c') }, 'm'),
  ],
  [
    'err with causes',
    (l) =>
      l.error(
        { err: new Error('top', { cause: new RangeError('middle', { cause: new Error('bottom') }) }) },
        'x',
      ),
  ],
  ['VError-style cause', (l) => l.error({ err: vError }, 'v')],
  ['self-referencing error', (l) => l.error({ err: selfRef }, 's')],
  [
    'aggregate error',
    (l) => l.error({ err: new AggregateError([new Error('a'), new Error('b')], 'agg') }, 'g'),
  ],
  ['err that is not an error', (l) => l.error({ err: 'just a string' }, 'e')],
  ['msg field in the object', (l) => l.info({ msg: 'inside', err: new Error('e') })],
  ['a field named like a binding', (l) => l.info({ pid: 1, role: 'other' }, 'dup')],
  [
    'every level',
    (l) => {
      l.fatal('f');
      l.error('e');
      l.warn('w');
      l.info('i');
      l.debug('d');
      l.trace('t');
    },
  ],
  ['child logger', (l) => l.child({ worker: 1, err: new Error('bound') }).info({ x: 1 }, 'from child')],
  ['null fields', (l) => l.info(null)],
];

/** The lines of `call` through `make(fd)`, with every time replaced. */
function linesOf(make: (fd: number) => Logger, call: Call): string[] {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nserve-log-line-'));
  const file = path.join(dir, 'out');
  const fd = fs.openSync(file, 'w');
  try {
    call(make(fd));
  } finally {
    fs.closeSync(fd);
  }
  const text = fs.readFileSync(file, 'utf8');
  fs.rmSync(dir, { recursive: true, force: true });
  return text
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => l.replace(/"time":"[^"]+"/, '"time":"T"'));
}

const base = { role: 'worker', worker: 3 };

function viaPino(fd: number): Logger {
  // nserve's former logger: these options and a synchronous destination.
  return pino(
    { level: 'trace', base: { pid: process.pid, ...base }, timestamp: pino.stdTimeFunctions.isoTime },
    { write: (s: string) => fs.writeSync(fd, s) },
  ) as unknown as Logger;
}

function viaNserve(fd: number): Logger {
  return createLogger({ level: 'trace', base, format: 'json', fd });
}

for (const [name, call] of CALLS) {
  test(`log line as pino writes it: ${name}`, () => {
    assert.deepEqual(linesOf(viaNserve, call), linesOf(viaPino, call));
  });
}

test('levels below the threshold are not written; silent writes nothing', () => {
  const lines = linesOf(
    (fd) => createLogger({ level: 'warn', base, format: 'json', fd }),
    (l) => {
      l.info('no');
      l.warn('yes');
      l.error('yes');
    },
  );
  assert.equal(lines.length, 2);
  assert.deepEqual(
    linesOf(
      (fd) => createLogger({ level: 'silent', base, format: 'json', fd }),
      (l) => l.fatal('no'),
    ),
    [],
  );
});
