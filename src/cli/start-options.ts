// The options of `nserve start` (and `nserve config`), as data read off the settings table
// (config/settings.ts): cli/program.ts makes commander options of them, and `parseStartArgs` reads a
// plain `start` command line without loading commander at all.
//
// Why: every nserve process (single server, master, each worker, boot-check child) is an `nserve start`
// command line, and commander costs each ~2 MB and several ms of start-up. `parseStartArgs` accepts only
// what it reads exactly as commander would (`--opt value`, `--opt=value`, `-o value`, `-ovalue`, flags,
// one app argument); for anything else (help, version, an unknown option, a bad choice, a missing value,
// a second argument) it returns undefined and the caller hands the command line to commander, which
// answers it as it always has. test/unit/start-options.test.ts compares both readings.
//
// `--` ends nserve's command line: what follows is the app's (`nserve start next -w 2 -- start`, PM2's
// convention), given to it as process.argv[2…]. Both readings split there first (splitAppArgs): commander
// drops a `--` from its operands, so it could not tell `start app x` (an error) from `start app -- x`.
import type { CliOptions } from '../config/index.js';
import { optionKey, SETTINGS, type Setting } from '../config/settings.js';

export interface StartOption {
  /** commander's flags: `-b, --bind <uri>`, `--tag-output`. */
  flags: string;
  description: string;
  /** Repeatable: the values are collected into an array. */
  repeatable?: true;
  choices?: readonly string[];
}

/** Every setting with a flag, in the table's order (config/settings.ts). */
export const START_OPTIONS: readonly StartOption[] = SETTINGS.flatMap((s: Setting) =>
  s.flags === undefined || s.help === undefined
    ? []
    : [
        {
          flags: s.flags,
          description: s.help,
          ...(s.repeatable === undefined ? {} : { repeatable: s.repeatable }),
          ...(s.choices === undefined ? {} : { choices: s.choices }),
        },
      ],
);

interface ParsedFlags {
  short: string | undefined;
  long: string;
  /** The option's key in CliOptions, as commander names it (`--tag-output` → `tagOutput`). */
  key: string;
  takesValue: boolean;
}

function parseFlags(flags: string): ParsedFlags {
  const m = /^(?:-(\w), )?--([\w-]+)( <\w+>)?$/.exec(flags);
  if (m === null) throw new Error(`unexpected option flags: ${flags}`);
  const long = m[2] as string;
  return {
    short: m[1],
    long,
    key: optionKey(flags),
    takesValue: m[3] !== undefined,
  };
}

const BY_NAME = new Map<string, StartOption & ParsedFlags>();
for (const o of START_OPTIONS) {
  const p = { ...o, ...parseFlags(o.flags) };
  BY_NAME.set(`--${p.long}`, p);
  if (p.short !== undefined) BY_NAME.set(`-${p.short}`, p);
}

export interface StartArgs {
  app: string | undefined;
  opts: CliOptions;
}

/**
 * nserve's part of a `start` command line and the app's: everything after the first `--` (undefined
 * without one; `[]` for a `--` with nothing after it, which gives the app no arguments even when the
 * config file has `args`). A `--` is never an option's value here: `--control-token=--` is.
 */
export function splitAppArgs(args: readonly string[]): { own: string[]; app: string[] | undefined } {
  const at = args.indexOf('--');
  return at === -1 ? { own: [...args], app: undefined } : { own: args.slice(0, at), app: args.slice(at + 1) };
}

/**
 * The app and options of `nserve start ARGS` as commander would read them, or undefined when commander
 * must read them itself (help, errors, anything unusual). `args` is what follows `start`.
 */
export function parseStartArgs(all: readonly string[]): StartArgs | undefined {
  const { own: args, app: appArgs } = splitAppArgs(all);
  const opts: Record<string, string | string[] | boolean> = {};
  if (appArgs !== undefined) opts.args = appArgs;
  let app: string | undefined;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] as string;
    if (!arg.startsWith('-') || arg === '-') {
      if (app !== undefined) return undefined; // a second argument: commander's error
      app = arg;
      continue;
    }
    let name = arg;
    let value: string | undefined;
    if (arg.startsWith('--')) {
      const eq = arg.indexOf('=');
      if (eq !== -1) {
        name = arg.slice(0, eq);
        value = arg.slice(eq + 1);
      }
    } else if (arg.length > 2) {
      name = arg.slice(0, 2);
      value = arg.slice(2);
    }
    const option = BY_NAME.get(name);
    if (option === undefined) return undefined; // --help, --version, a typo: commander answers
    if (!option.takesValue) {
      if (value !== undefined) return undefined;
      opts[option.key] = true;
      continue;
    }
    if (value === undefined) {
      value = args[++i];
      // Missing, or looks like an option: let commander decide what it means.
      if (value === undefined || value.startsWith('-')) return undefined;
    }
    if (option.choices !== undefined && !option.choices.includes(value)) return undefined;
    if (option.repeatable === true) {
      const previous = opts[option.key];
      opts[option.key] = [...(Array.isArray(previous) ? previous : []), value];
    } else opts[option.key] = value;
  }
  return { app, opts: opts as CliOptions };
}
