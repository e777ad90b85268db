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
export {
  type Config,
  defineConfig,
  type HookContext,
  type HookFn,
  type HookName,
  type UserConfig,
} from './config/index.js';
export { VERSION } from './version.js';
