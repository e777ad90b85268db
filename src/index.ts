// The package's public API: typed config for nserve.config.{mjs,js}.

export {
  type DrainInfo,
  type DrainListener,
  drainSignal,
  finishOnOldCode,
  markLongLived,
  markLongPoll,
  onDrain,
} from './app/drain-api.js';
// Not the internal, validated Config: its shape is nserve's to change; a config file is a UserConfig.
export {
  defineConfig,
  type HookContext,
  type HookFn,
  type HookName,
  type UserConfig,
} from './config/index.js';
export { VERSION } from './version.js';
