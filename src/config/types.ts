// The configuration's types (UserConfig, the frozen Config, CliOptions, hooks) and the hook names: the
// leaf that values.ts, build.ts, file.ts and describe.ts import, so that none of them imports index.ts back.
import type { LevelWithSilent } from 'pino';
import type { ControlConfig } from '../control/api.js';
import type { Balance, BindSpec } from '../listen/bind-uri.js';
import type { LogFormat } from '../log/logger.js';
import type { RestartOverflow } from '../memory/fit.js';
import type { LeakPolicy } from '../os/descriptors.js';
import type { MetricsAddress } from './derive.js';
import type { ConfigFileSource } from './file.js';
import type { Source } from './values.js';
export interface HookContext {
  /** Which hook is running, e.g. 'onRestart'. */
  hook: HookName;
  /** Worker index, for worker hooks and beforeSpawn. */
  worker?: number;
  /** Worker generation (phase) for worker hooks. */
  phase?: number;
}
export type HookFn = (context: HookContext) => unknown;
export type HookName = 'onRestart' | 'onWorkerBoot' | 'onWorkerShutdown' | 'beforeSpawn' | 'onBooted';
export const HOOK_NAMES: readonly HookName[] = [
  'onRestart',
  'onWorkerBoot',
  'onWorkerShutdown',
  'beforeSpawn',
  'onBooted',
];

/** What a config file may export (all optional; CLI flags override it). Durations are in seconds. */
export interface UserConfig {
  app?: string;
  /** The app's arguments: it sees process.argv = [node, APP, ...args] (`nserve start APP -- ARGS` wins). */
  args?: string[];
  bind?: string | string[];
  port?: number;
  workers?: number;
  slots?: number;
  /** How new connections are spread over the slots of a TCP bind (docs/balancing.md). */
  balance?: Balance;
  directory?: string;
  pidfile?: string;
  environment?: string;
  shutdownTimeout?: number;
  workerTimeout?: number;
  workerBootTimeout?: number;
  hookTimeout?: number;
  drainGrace?: number;
  keepAliveTimeout?: number;
  headersTimeout?: number;
  requestTimeout?: number;
  /** Seconds long-lived connections (WebSocket, event streams) get to close at a drain (default 2). */
  longLivedGrace?: number;
  /**
   * Seconds a drain waits for long-polls (engine.io's polling transport, responses marked with
   * markLongPoll) before they stop holding it: a cluster hot restart switches, they finish on old code;
   * elsewhere their connections end and the client polls again (default 1).
   */
  switchTimeout?: number;
  /** Seconds a stop keeps serving, with the health path answering 503, before it stops accepting. */
  shutdownDelay?: number;
  /** A worker whose RSS stays above this (bytes, or '512MB') for 3 check-ins is replaced, surge-first. */
  workerMaxMemory?: number | string;
  backlog?: number;
  logLevel?: LevelWithSilent;
  logFormat?: LogFormat;
  leakPolicy?: LeakPolicy;
  /** A cluster hot restart that does not fit in the memory limit: staged (default), phased or refuse. */
  restartOverflow?: RestartOverflow;
  controlUrl?: string;
  controlToken?: string;
  /** A read-only Prometheus listener, `tcp://HOST:PORT` (docs/metrics.md). */
  metricsUrl?: string;
  state?: string;
  redirectStdout?: string;
  redirectStderr?: string;
  accessLog?: boolean;
  /**
   * Single mode: check that the new code boots in a separate process before a hot restart's exec (the
   * default execs at once and comes back to the previous release if the new one fails to boot).
   */
  bootCheck?: boolean;
  healthPath?: string;
  /** Each new worker (and new code in single mode) must answer GET of this path with a 2xx, over a private socket, before it gets traffic. */
  readyProbe?: string;
  /** Seconds the ready probe may take (default 5). */
  readyProbeTimeout?: number;
  envFile?: string;
  tagOutput?: boolean;
  /**
   * Phased restarts: the first new worker serves alone for this long ('3s', '500ms', or seconds) and its
   * 5xx rate is compared with the old workers'; a worse one stops the rollout (docs/restarts.md).
   */
  canary?: number | string;
  /** Phased restarts: workers replaced at a time (default 1, at most the worker count). */
  phaseConcurrency?: number;
  /**
   * Cluster mode: worker processes kept started ahead of need (Node and nserve loaded, no app), so that a
   * restart's or a replacement's new worker starts loading the app at once (default 0; docs/restarts.md).
   */
  standby?: number;
  onRestart?: HookFn | HookFn[];
  onWorkerBoot?: HookFn | HookFn[];
  onWorkerShutdown?: HookFn | HookFn[];
  beforeSpawn?: HookFn | HookFn[];
  onBooted?: HookFn | HookFn[];
}

export interface Config {
  app: string;
  /** The app's arguments (after `--`, or config key args): its process.argv is [node, APP file, ...args]. */
  args: readonly string[];
  binds: readonly BindSpec[];
  /** 0 = single mode. */
  workers: number;
  /** Reuseport slot sockets per TCP bind in cluster mode. */
  slots: number;
  /**
   * `kernel`: the kernel's own hash of each connection spreads it over the slots. `ip-hash`: a BPF program
   * on each TCP bind pins a client address to one slot (set on every TCP bind spec too, for the binder).
   */
  balance: Balance;
  /** Absolute, not resolved: a symlinked release directory is re-resolved at every (re)start. */
  directory: string;
  pidfile: string | undefined;
  environment: string | undefined;
  shutdownTimeoutMs: number;
  workerTimeoutMs: number;
  workerBootTimeoutMs: number;
  hookTimeoutMs: number;
  drainGraceMs: number;
  /**
   * HTTP timeouts of the app's connections (Node's http.Server options). Behind a load balancer the
   * keep-alive timeout must outlast the balancer's idle timeout (AWS ALB: 60 s), or the balancer reuses a
   * connection the server is closing and answers 502. undefined: not set (the app's own listen-compat
   * server setting, else Node's default: 5 s, 60 s, 300 s).
   */
  keepAliveTimeoutMs: number | undefined;
  headersTimeoutMs: number | undefined;
  requestTimeoutMs: number | undefined;
  longLivedGraceMs: number;
  switchTimeoutMs: number;
  shutdownDelayMs: number;
  /** Bytes; undefined: no limit. */
  workerMaxMemory: number | undefined;
  backlog: number;
  logLevel: LevelWithSilent;
  /** `--log-format`; undefined: pretty on a terminal, JSON otherwise. */
  logFormat: LogFormat | undefined;
  /** What to do with descriptors that would leak into a hot-restarted image. */
  leakPolicy: LeakPolicy;
  /** `--restart-overflow`: what a cluster hot restart does when it does not fit (memory/fit.ts). */
  restartOverflow: RestartOverflow;
  /** The control server (master or single only), if `--control-url` is set. */
  control: ControlConfig | undefined;
  /** `--metrics-url`: a read-only listener answering GET /metrics, kept across hot restarts. */
  metricsUrl: MetricsAddress | undefined;
  /** Requests are counted and /metrics answered: a metrics listener or a control server is configured. */
  metrics: boolean;
  /** `--state`: where `nserve ctl -S` finds the PID, control URL and token. */
  stateFile: string | undefined;
  /** `--redirect-stdout` / `--redirect-stderr`: appended to, reopened on SIGHUP. */
  redirectStdout: string | undefined;
  redirectStderr: string | undefined;
  /** One log line per request (method, path, status, duration). */
  accessLog: boolean;
  bootCheck: boolean;
  /** A path nserve answers itself (200 while serving, 503 while draining), for load balancers and k8s. */
  healthPath: string | undefined;
  readyProbe: string | undefined;
  readyProbeTimeoutMs: number;
  /** `--dotenv` (config envFile): dotenv file, relative to the (re-resolved) directory, read at every (re)start. */
  envFile: string | undefined;
  /** The app's stdout/stderr lines become log events naming the process (worker) that wrote them. */
  tagOutput: boolean;
  /** `--canary`: ms the first new worker of a phased restart is watched alone; undefined: no canary. */
  canaryMs: number | undefined;
  /** `--phase-concurrency`: workers a phased restart replaces at a time. */
  phaseConcurrency: number;
  /** `--standby`: worker processes kept started and waiting for a wake (0: none). */
  standby: number;
  configFile: string | undefined;
  /** How `configFile` was found. */
  configSource: ConfigFileSource | undefined;
  /** Where each setting came from, for `nserve config --print`. */
  sources: Readonly<Record<string, Source>>;
  hooks: Readonly<Record<HookName, readonly HookFn[]>>;
}

// The `start` command's flags as commander parsed them: a type read off the settings table.
export type { CliOptions } from './settings.js';
