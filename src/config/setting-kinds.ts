// What one row of the settings table (settings.ts) holds, and the small parsers and views its rows share.
import type { Config } from './types.js';
import { invalid, type Picked, type SecondsFloor, seconds, str } from './values.js';

export interface Setting {
  /** The config-file key (UserConfig), the name `nserve config` shows and the key of Config.sources. */
  key: string;
  /** commander's flags (`-b, --bind <uri>`, `--tag-output`); absent: no flag of its own. */
  flags?: string;
  /** The flag's values are collected into an array. */
  repeatable?: true;
  /** The only values the flag takes (commander refuses others). */
  choices?: readonly string[];
  /** Set on the command line only: no config-file key (`-C`). */
  cliOnly?: true;
  /** The environment variable read below the config file. */
  env?: string;
  /** The flag's line in `nserve start --help`. */
  help?: string;
  /** The README's row: the default and what it means (the option column comes from `flags`, or `option`). */
  doc?: { option?: string; default: string; meaning: string };
  /** The Config field the setting becomes. */
  field?: keyof Config;
  /** The value of a setting that stands alone (its default included); absent: build.ts derives it. */
  parse?: (key: string, v: Picked) => unknown;
  /** How `nserve config` shows the field (default: as it is); absent `field`: no row. */
  show?: (value: never) => unknown;
}

export const inSeconds = (ms: number): number => ms / 1000;
export const inSecondsOrNull = (ms: number | undefined): number | null =>
  ms === undefined ? null : ms / 1000;
export const orNull = (v: unknown): unknown => v ?? null;
export const secondsFrom =
  (dflt: number, floor?: SecondsFloor) =>
  (key: string, v: Picked): number =>
    seconds(key, v, dflt, floor);
/** An HTTP timeout: undefined when not set (the app's own server setting, else Node's default). */
export const optionalSeconds = (key: string, v: Picked): number | undefined =>
  v === undefined ? undefined : seconds(key, v, 0);
export const oneOf =
  (values: readonly string[], dflt: string | undefined) =>
  (key: string, v: Picked): string | undefined => {
    const value = str(key, v) ?? dflt;
    if (value !== undefined && !values.includes(value))
      throw invalid(key, value, v?.source ?? 'flag', `one of ${values.join(', ')}`);
    return value;
  };
