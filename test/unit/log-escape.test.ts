import assert from 'node:assert/strict';
import { test } from 'node:test';
import logfmt from 'logfmt';
import { escapeControl, escapeJsonLine, escapeLines } from '../../src/log/escape.js';
import { lineFormatter, logfmtFields } from '../../src/log/logger.js';
import { lineEnd } from '../../src/log/tag-output.js';

// What an app can put in an exception's message to forge a line or drive the operator's terminal.
const HOSTILE = 'boom\nlevel=info msg="FORGED LINE"\r\x1b[2J\x1b]0;title\x07\x00\x7f\u009b31m\u2028end';
// biome-ignore lint/suspicious/noControlCharactersInRegex: looking for raw control characters
const RAW_CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u2028\u2029]/;

const line = (o: Record<string, unknown>): string =>
  `${JSON.stringify({ level: 50, time: '2026-12-01T10:00:00.000Z', pid: 7, hostname: 'h', ...o })}\n`;

test('escapeControl: every C0, DEL, C1 and U+2028/2029 becomes a visible escape; other text is kept', () => {
  assert.equal(escapeControl('a\nb\rc\td'), 'a\\nb\\rc\\td');
  assert.equal(escapeControl('\x1b[31mred\x00'), '\\x1b[31mred\\x00');
  assert.equal(escapeControl('\x7f\u0085\u009b'), '\\x7f\\x85\\x9b');
  assert.equal(escapeControl('\u2028\u2029'), '\\u2028\\u2029');
  // Not control characters: kept (a backslash too: text that reads `\n` stays on its line).
  assert.equal(escapeControl('héllo \u00a0 ü \ufffd 日本 \\n'), 'héllo \u00a0 ü \ufffd 日本 \\n');
  const out = escapeControl(HOSTILE);
  assert.doesNotMatch(out, RAW_CONTROL);
  assert.doesNotMatch(out, /\n/);
  // Invalid UTF-8 from a Buffer arrives as U+FFFD; a latin1-decoded byte 0x9b (a request path) as C1.
  assert.equal(escapeControl(Buffer.from([0x61, 0xff, 0xc3, 0x62]).toString('utf8')), 'a\ufffd\ufffdb');
  assert.equal(escapeControl(Buffer.from([0x2f, 0x9b, 0x1b]).toString('latin1')), '/\\x9b\\x1b');
});

test('escapeLines: line breaks kept, each continuation line indented, controls escaped within lines', () => {
  const stack = 'Error: boom\nlevel=info msg="FORGED"\x1b[0m\n    at f (/srv/a.js:1:2)\r\n\tat g';
  const out = escapeLines(stack);
  const lines = out.split('\n');
  assert.equal(lines[0], 'Error: boom');
  assert.equal(lines[1], '    level=info msg="FORGED"\\x1b[0m');
  assert.equal(lines[2], '    at f (/srv/a.js:1:2)');
  assert.equal(lines[3], '    \\tat g');
  for (const l of lines.slice(1)) assert.match(l, /^ {4}/);
  assert.doesNotMatch(out, RAW_CONTROL);
});

test('escapeJsonLine: the same JSON value, with no raw DEL, C1 or U+2028/2029', () => {
  const json = JSON.stringify({ msg: HOSTILE });
  const out = escapeJsonLine(json);
  assert.doesNotMatch(out, RAW_CONTROL);
  assert.deepEqual(JSON.parse(out), { msg: HOSTILE });
});

test('pretty and logfmt: a hostile message, error and field stay on one line with no raw control', () => {
  const err = { type: 'Error', message: HOSTILE, stack: `Error: ${HOSTILE}\n    at f (/srv/app.js:1:2)` };
  const input = line({
    role: 'worker',
    worker: 1,
    msg: `uncaught exception: ${HOSTILE}`,
    err,
    path: HOSTILE,
  });
  for (const format of ['pretty', 'logfmt'] as const) {
    const out = lineFormatter(format)(input);
    assert.equal(out.endsWith('\n'), true, format);
    assert.equal(out.slice(0, -1).includes('\n'), false, `${format}: ${JSON.stringify(out)}`);
    assert.doesNotMatch(out, RAW_CONTROL, format);
    assert.match(out, /boom\\+nlevel=info/, format);
  }
  const parsed = logfmt.parse(lineFormatter('logfmt')(input).trimEnd()) as Record<string, string>;
  assert.match(parsed.msg ?? '', /^uncaught exception: boom\\nlevel=info msg="FORGED LINE"\\r\\x1b\[2J/);
  assert.equal(logfmtFields({ msg: 'a\r\nb' }).msg, 'a\\r\\nb');
});

test('pretty and logfmt: a tagged line of the app output keeps its colours', () => {
  const green = '\x1b[32mgreen\x1b[0m';
  const input = line({ level: 30, role: 'worker', worker: 1, stream: 'stdout', msg: green });
  const pretty = lineFormatter('pretty')(input);
  assert.ok(pretty.endsWith(`worker 1: ${green} {"stream":"stdout"}\n`), JSON.stringify(pretty));
  const lf = lineFormatter('logfmt')(input);
  assert.ok(lf.includes(` msg=${green} `), JSON.stringify(lf));
});

test('tag-output lineEnd: a line ends at LF, CRLF or a bare CR; a CR at the very end waits for its LF', () => {
  assert.deepEqual(lineEnd('a\nb'), { at: 1, next: 2 });
  assert.deepEqual(lineEnd('a\r\nb'), { at: 1, next: 3 });
  assert.deepEqual(lineEnd('10%\r20%'), { at: 3, next: 4 });
  assert.equal(lineEnd('10%\r'), undefined);
  assert.equal(lineEnd('no end yet'), undefined);
});
