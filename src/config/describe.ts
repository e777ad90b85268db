// The configuration as `nserve config --print` shows it.

import { CONFIG_ENV } from './file.js';
import { SETTINGS, type Setting } from './settings.js';
import { type Config, HOOK_NAMES } from './types.js';
import type { Source } from './values.js';

/** The configuration as `nserve config --print` shows it: values (secrets redacted) and their sources. */
export function describeConfig(
  config: Config,
): Record<string, { value: unknown; source: Source | 'cwd' | 'none' }> {
  const out: Record<string, { value: unknown; source: Source | 'cwd' | 'none' }> = {};
  const source = (key: string): Source => config.sources[key] ?? 'default';
  // One row per setting of the table that becomes a Config field, in the table's order.
  for (const setting of SETTINGS as readonly Setting[]) {
    if (setting.field === undefined) continue;
    const value = config[setting.field];
    out[setting.key] = {
      value: setting.show === undefined ? value : setting.show(value as never),
      // The binds: a PORT from the environment (or --port) is where the default bind came from.
      source:
        setting.key === 'bind' && config.sources.bind === 'default' ? source('port') : source(setting.key),
    };
  }
  for (const name of HOOK_NAMES) {
    const n = config.hooks[name].length;
    out[name] = { value: `${n} hook${n === 1 ? '' : 's'}`, source: n > 0 ? 'file' : 'default' };
  }
  out.configFile = { value: config.configFile ?? null, source: config.configSource ?? 'none' };
  return out;
}

export function formatConfig(config: Config): string {
  const how: Record<string, string> = { flag: 'flag -C', env: `env ${CONFIG_ENV}`, cwd: 'found in cwd' };
  const rows = Object.entries(describeConfig(config)).map(
    ([k, v]) =>
      [k, JSON.stringify(v.value), k === 'configFile' ? (how[v.source] ?? v.source) : v.source] as const,
  );
  const w0 = Math.max(...rows.map((r) => r[0].length));
  const w1 = Math.max(...rows.map((r) => r[1].length));
  return `${rows.map(([k, v, src]) => `${k.padEnd(w0)}  ${v.padEnd(w1)}  ${src}`).join('\n')}\n`;
}
