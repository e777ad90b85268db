// The one table of settings: each one's command-line flag, config-file key, environment variable,
// parser, default, help line, README row and `nserve config` row. Fed from it:
//   - the `start` (and `config`) options: cli/start-options.ts, cli/program.ts;
//   - the config-file keys a file may set: file.ts;
//   - the values of the settings that stand alone: build.ts (the ones checked against others are in
//     derive.ts and build.ts, and say so here with `parse` absent);
//   - the rows of `nserve config`: describe.ts;
//   - the README's options table: settings-doc.ts (`npm run docs:options`);
//   - the type CliOptions (below).
// UserConfig and Config stay written out in types.ts, for their doc comments (an editor shows them in a
// config file); test/unit/settings.test.ts fails when they and this table disagree.
import { RESTART_SETTINGS } from './settings-restarts.js';
import { SERVING_SETTINGS } from './settings-serving.js';

export type { Setting } from './setting-kinds.js';

/** Every setting, in the order of `nserve start --help`, the README and `nserve config`. */
export const SETTINGS = [...SERVING_SETTINGS, ...RESTART_SETTINGS] as const;

/** A config-file key of the table (UserConfig's keys, hooks aside). */
export type SettingKey = Exclude<(typeof SETTINGS)[number], { cliOnly: true }>['key'];

// CliOptions, the `start` command's flags as commander parses them (strings, before validation), read
// off the table: `--tag-output` → tagOutput?: boolean, `-b, --bind <uri>` (repeatable) → bind?: string[].
type LongName<F> = F extends `${string}--${infer L} <${string}>`
  ? L
  : F extends `${string}--${infer L}`
    ? L
    : never;
type Camel<S> = S extends `${infer A}-${infer B}` ? `${A}${Capitalize<Camel<B>>}` : S;
type FlagValue<S> = S extends { flags: `${string}<${string}>` }
  ? S extends { repeatable: true }
    ? string[]
    : string
  : boolean;
type WithFlags = Extract<(typeof SETTINGS)[number], { flags: string }>;
export type CliOptions = {
  [S in WithFlags as Camel<LongName<S['flags']>>]?: FlagValue<S>;
} & {
  /** What followed `--` on the command line (cli/start-options.ts splitAppArgs). */
  args?: string[];
};

/** The key commander gives a flag's value: `--tag-output` → `tagOutput`. */
export function optionKey(flags: string): string {
  const long = /--([\w-]+)/.exec(flags)?.[1];
  if (long === undefined) throw new Error(`unexpected option flags: ${flags}`);
  return long.replace(/-(\w)/g, (_, c: string) => c.toUpperCase());
}
