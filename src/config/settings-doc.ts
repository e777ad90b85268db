// The README's options table, generated from the settings table (settings.ts), as docs/signals.md is
// from the signal table. `npm run docs:options` rewrites it between the markers; test/unit/settings.test.ts
// fails when the README and the table disagree.
import { SETTINGS, type Setting } from './settings.js';

export const OPTIONS_BEGIN =
  '<!-- options:begin: generated from src/config/settings*.ts by `npm run docs:options`; edit the table there -->';
export const OPTIONS_END = '<!-- options:end -->';

/** `-b, --bind <uri>` → `` `-b, --bind URI` `` (placeholders in capitals, as the README writes them). */
function optionLabel(setting: Setting): string {
  if (setting.doc?.option !== undefined) return setting.doc.option;
  const flags = (setting.flags ?? '').replace(/<(\w+)>/g, (_, name: string) => name.toUpperCase());
  return `\`${flags}\``;
}

/** The markdown table: one row per setting the README describes, in the table's order. */
export function renderOptionsTable(): string {
  const rows = ['| option | config key | default | meaning |', '|---|---|---|---|'];
  for (const setting of SETTINGS as readonly Setting[]) {
    if (setting.doc === undefined) continue;
    const key = setting.cliOnly === true ? '' : `\`${setting.key}\``;
    rows.push(`| ${optionLabel(setting)} | ${key} | ${setting.doc.default} | ${setting.doc.meaning} |`);
  }
  return `${rows.join('\n')}\n`;
}

/** `readme` with the part between the markers replaced by the table; throws when a marker is missing. */
export function withOptionsTable(readme: string): string {
  const begin = readme.indexOf(OPTIONS_BEGIN);
  const end = readme.indexOf(OPTIONS_END);
  if (begin === -1 || end < begin)
    throw new Error(`README.md has no options table markers (${OPTIONS_BEGIN} … ${OPTIONS_END})`);
  // Blank lines around the table: markdown ends an HTML block (the markers) at a blank line.
  return `${readme.slice(0, begin + OPTIONS_BEGIN.length)}\n\n${renderOptionsTable()}\n${readme.slice(end)}`;
}
