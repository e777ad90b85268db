// --dotenv FILE (config envFile): environment variables from a dotenv file, read again at every (re)start from the release
// the process serves, so a deploy that changes one reaches the app (PM2's --update-env).
//
// Every nserve process that serves or spawns (single server, master, worker) applies the file to its own
// environment when it starts, reading it from the directory it serves (resolved again at each restart):
// a hot restart's new image and every new worker (phased restart, replacement) read the file of their
// release. The names the file set travel in ENV_FILE_KEYS (inherited by workers and across the exec), so
// a key removed from the file is removed from the environment too. Values are never logged.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { errorMessage, usageError } from '../errors.js';
import { ENV_FILE_KEYS } from '../restart/handoff.js';

export interface EnvFileChange {
  file: string;
  /** Keys whose value is new or different. */
  changed: string[];
  /** Keys the previous env file set and this one does not. */
  removed: string[];
}

/** A name a dotenv line may set (what shells and dotenv accept). */
const NAME = /^[A-Za-z_][A-Za-z0-9_.-]*$/;

/**
 * The variables of `file` (relative to `directory`); throws a usage error if it cannot be read, or if a
 * line does not read as NAME=value (Node's parser would make a name of `FOO\n` out of `FOO` followed by
 * `=bar`). Also what a hot restart checks before its exec (restart/prepare.ts).
 */
export function readEnvFile(
  file: string,
  directory: string,
): { resolved: string; vars: NodeJS.Dict<string> } {
  const resolved = path.resolve(directory, file);
  let text: string;
  try {
    text = fs.readFileSync(resolved, 'utf8');
  } catch (err) {
    throw usageError(
      'ERR_NSERVE_INVALID_CONFIG',
      `cannot read the env file ${resolved} (--dotenv / envFile): ${errorMessage(err)}`,
      err,
    );
  }
  // Node 26's parser skips a line with no `=` (Node 20 glued it to the next line's name): find it first.
  const stray = strayLine(text.replace(/^\uFEFF/, ''));
  if (stray !== undefined)
    throw usageError(
      'ERR_NSERVE_INVALID_CONFIG',
      `invalid env file ${resolved} (--dotenv / envFile): ${JSON.stringify(stray)} is not a variable name (each line must be NAME=value)`,
    );
  // Node 20's parser keeps a byte-order mark, leading blanks and the blanks after `export` in a name,
  // which dotenv tools accept: dropped before the name is checked.
  // getBuiltinModule, not an ES import of node:util, which reads (and so loads) every lazy export.
  const parsed = process.getBuiltinModule('node:util').parseEnv(text.replace(/^\uFEFF/, ''));
  const vars: NodeJS.Dict<string> = {};
  for (const [raw, value] of Object.entries(parsed)) {
    // Blanks only: a name with a line break in it (`FOO` then `=bar`) stays refused.
    const name = raw.replace(/^[ \t]+|[ \t]+$/g, '').replace(/^export[ \t]+/, '');
    if (!NAME.test(name))
      throw usageError(
        'ERR_NSERVE_INVALID_CONFIG',
        `invalid env file ${resolved} (--dotenv / envFile): ${JSON.stringify(raw)} is not a variable name (each line must be NAME=value)`,
      );
    vars[name] = value;
  }
  return { resolved, vars };
}

/** The first line that is not blank, a comment, NAME=value or the continuation of a quoted value. */
function strayLine(text: string): string | undefined {
  let quote: string | undefined;
  for (const line of text.split(/\r?\n/)) {
    if (quote !== undefined) {
      if (line.includes(quote)) quote = undefined;
      continue;
    }
    const t = line.trim();
    if (t === '' || t.startsWith('#')) continue;
    const eq = t.indexOf('=');
    if (eq <= 0) return t;
    const value = t.slice(eq + 1).trimStart();
    const q = value[0];
    if ((q === '"' || q === "'" || q === '`') && !value.includes(q, 1)) quote = q;
  }
  return undefined;
}

/** Read `file` (relative to `directory`) and apply it to `env`; throws a usage error if it cannot be read. */
export function applyEnvFile(
  file: string,
  directory: string,
  env: NodeJS.ProcessEnv = process.env,
): EnvFileChange {
  const { resolved, vars } = readEnvFile(file, directory);
  const previous = (env[ENV_FILE_KEYS] ?? '').split(',').filter((k) => k !== '');
  const changed: string[] = [];
  const removed: string[] = [];
  for (const k of previous) {
    if (vars[k] === undefined && env[k] !== undefined) {
      delete env[k];
      removed.push(k);
    }
  }
  for (const [k, v] of Object.entries(vars)) {
    if (v === undefined || k === ENV_FILE_KEYS) continue;
    if (env[k] !== v) changed.push(k);
    env[k] = v;
  }
  env[ENV_FILE_KEYS] = Object.keys(vars).join(',');
  return { file: resolved, changed: changed.sort(), removed: removed.sort() };
}

/** `env file /srv/current/.env: changed A, B; removed C` (names only), or undefined when nothing changed. */
export function describeEnvChange(c: EnvFileChange): string | undefined {
  if (c.changed.length === 0 && c.removed.length === 0) return undefined;
  const parts = [
    ...(c.changed.length > 0 ? [`changed ${c.changed.join(', ')}`] : []),
    ...(c.removed.length > 0 ? [`removed ${c.removed.join(', ')}`] : []),
  ];
  return `env file ${c.file}: ${parts.join('; ')}`;
}
