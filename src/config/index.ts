// The configuration's public face: what a config file may export (UserConfig, defineConfig) and the one
// validated, frozen Config built from CLI options + config file. Nothing downstream re-reads argv or env.
// The work is split by role under config/: values.ts (parsing one setting), build.ts (all settings →
// Config), file.ts (finding and loading the config file), describe.ts (`nserve config --print`, imported from
// there: every server process reads the config, none prints it).
// The types live in types.ts, the leaf the modules of this folder import.
import type { UserConfig } from './types.js';

export { buildConfig } from './build.js';
export { MAX_SOCKETS_PER_WORKER, type MetricsAddress } from './derive.js';
export {
  CONFIG_ENV,
  type ConfigFileSource,
  describeConfigSource,
  type FoundConfigFile,
  findConfigFile,
  loadConfig,
  readConfigFile,
} from './file.js';
export * from './types.js';
export type { Source } from './values.js';

/** Typed helper for config files: `export default defineConfig({ ... })`. */
export function defineConfig(config: UserConfig): UserConfig {
  return config;
}
