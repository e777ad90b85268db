// The package's public API: typed config for nserve.config.{mjs,js}.
export {
  type Config,
  defineConfig,
  type HookContext,
  type HookFn,
  type HookName,
  type UserConfig,
} from './config/index.js';
export {
  type DrainInfo,
  type DrainListener,
  drainSignal,
  finishOnOldCode,
  markLongLived,
  markLongPoll,
  onDrain,
} from './drain.js';
export { VERSION } from './version.js';
