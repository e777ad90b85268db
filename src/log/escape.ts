// Text from app code (an exception's message, a worker's leaving reason, a request path) must not be able
// to forge log lines or drive the operator's terminal: one event is one line, in every format.
//
// `escapeControl` makes every control character visible: C0 (NUL..US, which includes LF, CR and ESC),
// DEL, C1 (U+0080..U+009F: an 8-bit CSI reaches some terminals) and the Unicode line and paragraph
// separators (U+2028/2029: line breaks to some viewers). Common ones get their C escape (`\n`, `\r`,
// `\t`), the others `\xHH` or `\uHHHH`. A backslash is kept as it is: text that already reads `\n`
// stays on its line, which is what matters (the JSON format, for consumers that must tell them apart,
// escapes backslashes itself). Invalid UTF-8 never reaches here as bytes: Node decodes it to U+FFFD (a
// request path, decoded as latin1, turns a 0x9b byte into U+009B, escaped as C1).

// biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g;

const NAMED: Record<string, string> = { '\n': '\\n', '\r': '\\r', '\t': '\\t' };

function escapeOne(ch: string): string {
  const named = NAMED[ch];
  if (named !== undefined) return named;
  const code = ch.charCodeAt(0);
  return code <= 0xff
    ? `\\x${code.toString(16).padStart(2, '0')}`
    : `\\u${code.toString(16).padStart(4, '0')}`;
}

/** `text` with every control character escaped: safe to put on one line of a log. */
export function escapeControl(text: string): string {
  UNSAFE.lastIndex = 0;
  return UNSAFE.test(text) ? text.replace(UNSAFE, escapeOne) : text;
}

/**
 * `text` as lines each of which is safe on its own: control characters escaped within each line, the
 * line breaks (LF, CRLF) kept, and every line after the first indented by `indent` unless it already
 * starts with a space (a stack's frames) or `>` (a code frame's marked line), so that no continuation
 * line can pass for an event of its own: nserve's own lines start with `nserve:`, a time, or `{`.
 */
export function escapeLines(text: string, indent = '    '): string {
  return text
    .split(/\r\n|\n/)
    .map((line, i) => {
      const safe = escapeControl(line);
      return i === 0 || /^[ >]/.test(safe) ? safe : `${indent}${safe}`;
    })
    .join('\n');
}

// A JSON line escapes C0 controls already (JSON requires it); these it may carry raw.
const JSON_UNSAFE = /[\u007f-\u009f\u2028\u2029]/g;

/** A JSON text with DEL, C1 and U+2028/2029 written as `\uHHHH` (still the same JSON value). */
export function escapeJsonLine(line: string): string {
  JSON_UNSAFE.lastIndex = 0;
  return JSON_UNSAFE.test(line)
    ? line.replace(JSON_UNSAFE, (ch) => `\\u${ch.charCodeAt(0).toString(16).padStart(4, '0')}`)
    : line;
}
