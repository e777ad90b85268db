// Load failures.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { escapeControl } from '../log/escape.js';

// An app that throws at import is reported with the first stack frame inside the app (file:line:column,
// skipping node_modules and Node's internals) and a short code frame, in single and cluster mode alike.

export interface SourceLocation {
  file: string;
  line: number;
  column: number;
}

/** `app FILE failed to load: Type: message (at path:line:col)`, then a code frame when the line is known. */
export function describeLoadFailure(err: unknown, file: string, directory: string): string {
  const e = err instanceof Error ? err : new Error(String(err));
  const type = e.name === 'Error' || e.name === '' ? '' : `${e.name}: `;
  // The app's text: control characters escaped (a CR or an ESC in it must not reach a terminal raw).
  const first = escapeControl(e.message.split('\n')[0] ?? '');
  const at =
    appFrame(e.stack ?? '', directory) ??
    (e.name === 'SyntaxError' ? syntaxErrorAt(file, directory) : undefined);
  const where =
    at === undefined ? '' : ` (at ${path.relative(directory, at.file) || at.file}:${at.line}:${at.column})`;
  const frame = at === undefined ? undefined : codeFrame(at);
  return `app ${file} failed to load: ${type}${first}${where}${frame === undefined ? '' : `\n${frame}`}`;
}

/** The first location in a stack inside `directory` and not in node_modules (else the first inside it). */
export function appFrame(stack: string, directory: string): SourceLocation | undefined {
  const found: SourceLocation[] = [];
  // A CommonJS SyntaxError starts with "path:line", the offending line and a caret under the column.
  const header = /^(\/[^\n]*?):(\d+)\n([^\n]*)\n( *)\^/.exec(stack);
  if (header !== undefined && header !== null)
    found.push({ file: header[1]!, line: Number(header[2]), column: header[4]!.length + 1 });
  for (const m of stack.matchAll(/^\s+at (?:.*\()?((?:file:\/\/)?\/[^():]+):(\d+):(\d+)\)?$/gm)) {
    const raw = m[1]!;
    const f = raw.startsWith('file://') ? fileURLToPath(raw) : raw;
    found.push({ file: f, line: Number(m[2]), column: Number(m[3]) });
  }
  const inside = found.filter((l) => l.file.startsWith(`${directory}${path.sep}`));
  return inside.find((l) => !l.file.includes(`${path.sep}node_modules${path.sep}`)) ?? inside[0];
}

/**
 * An ES module's SyntaxError carries no location in its stack (Node prints it only for an uncaught one):
 * find it with `node --check` on the app file and the files it imports relatively (at most 50, inside
 * the app's directory). Only on this failure path, so its cost (~40 ms a file) is paid only then.
 */
function syntaxErrorAt(file: string, directory: string): SourceLocation | undefined {
  const queue = [file];
  const seen = new Set<string>();
  while (queue.length > 0 && seen.size < 50) {
    const f = queue.shift()!;
    if (seen.has(f) || !f.startsWith(`${directory}${path.sep}`) || !fs.existsSync(f)) continue;
    seen.add(f);
    // node:child_process is loaded only here, for an app that failed to load.
    const r = process
      .getBuiltinModule('node:child_process')
      .spawnSync(process.execPath, ['--check', f], { encoding: 'utf8', timeout: 5000 });
    if (r.status !== 0 && typeof r.stderr === 'string') {
      const at = appFrame(r.stderr.trimStart(), directory);
      if (at !== undefined) return at;
    }
    let source = '';
    try {
      source = fs.readFileSync(f, 'utf8');
    } catch {
      continue;
    }
    for (const m of source.matchAll(/(?:from|import)\s*['"](\.{1,2}\/[^'"]+)['"]/g))
      queue.push(path.resolve(path.dirname(f), m[1]!));
  }
  return undefined;
}

/** Two lines around the location, the line itself marked, a caret under the column. */
export function codeFrame(at: SourceLocation): string | undefined {
  let lines: string[];
  try {
    lines = fs.readFileSync(at.file, 'utf8').split('\n');
  } catch {
    return undefined;
  }
  const count = lines.at(-1) === '' ? lines.length - 1 : lines.length;
  if (at.line < 1 || at.line > count) return undefined;
  const from = Math.max(1, at.line - 2);
  const to = Math.min(count, at.line + 1);
  const width = String(to).length;
  const out: string[] = [];
  for (let n = from; n <= to; n++) {
    const text = escapeControl((lines[n - 1] ?? '').replace(/\t/g, '  ').slice(0, 160));
    out.push(`${n === at.line ? '>' : ' '} ${String(n).padStart(width)} | ${text}`.trimEnd());
    if (n === at.line) out.push(`  ${' '.repeat(width)} | ${' '.repeat(Math.max(0, at.column - 1))}^`);
  }
  return out.join('\n');
}
