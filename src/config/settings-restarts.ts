// The settings table, part two: stops, restarts and their timeouts, probes and limits.
// settings.ts joins the parts; its header says what is fed from them.
import { HEARTBEAT_INTERVAL_MS } from '../cluster/protocol.js';
import { RESTART_OVERFLOWS } from '../memory/fit.js';
import { LEAK_POLICIES } from '../os/descriptors.js';
import {
  inSeconds,
  inSecondsOrNull,
  oneOf,
  optionalSeconds,
  orNull,
  type Setting,
  secondsFrom,
} from './setting-kinds.js';
import { bool, byteSize, integer, type Picked, urlPath } from './values.js';

export const RESTART_SETTINGS = [
  {
    key: 'shutdownTimeout',
    flags: '--shutdown-timeout <s>',
    help: 'seconds to let in-flight requests finish on stop/restart (default 30)',
    doc: {
      default: '`30`',
      meaning: 'seconds in-flight requests may take on stop or restart (`0`: none, they are cut)',
    },
    field: 'shutdownTimeoutMs',
    parse: secondsFrom(30),
    show: inSeconds,
  },
  {
    key: 'workerTimeout',
    flags: '--worker-timeout <s>',
    help: 'seconds a worker may go without checking in (default 60)',
    doc: {
      default: '`60`',
      meaning:
        'a worker silent this long is killed and replaced (at least `2`: workers check in every second)',
    },
    field: 'workerTimeoutMs',
    parse: secondsFrom(60, {
      min: (2 * HEARTBEAT_INTERVAL_MS) / 1000,
      why: `workers check in every ${HEARTBEAT_INTERVAL_MS / 1000} s: a shorter timeout kills healthy workers`,
    }),
    show: inSeconds,
  },
  {
    key: 'workerBootTimeout',
    flags: '--worker-boot-timeout <s>',
    help: 'seconds new code may take to boot (default 60)',
    doc: { default: '`60`', meaning: 'new code must boot within this (boot check, workers; at least `1`)' },
    field: 'workerBootTimeoutMs',
    parse: secondsFrom(60, {
      min: 1,
      why: 'a worker, or new code, needs time to boot: Node alone takes a good part of a second under load',
    }),
    show: inSeconds,
  },
  {
    key: 'workerMaxMemory',
    flags: '--worker-max-memory <size>',
    help: 'replace a worker (surge-first, no request failing) whose RSS stays above SIZE, e.g. 512MB',
    doc: {
      default: 'off',
      meaning:
        'cluster mode: a worker whose RSS stays above SIZE (`512MB`, `1.5GB`, bytes; at least 16 MB) for 3 check-ins is replaced, its replacement first, no request failing ([docs/operating.md](docs/operating.md#a-per-worker-memory-limit---worker-max-memory))',
    },
    field: 'workerMaxMemory',
    parse: byteSize,
    show: orNull,
  },
  {
    key: 'hookTimeout',
    flags: '--hook-timeout <s>',
    help: 'seconds each hook may run (default 30)',
    doc: { default: '`30`', meaning: "each hook's time limit (above `0`)" },
    field: 'hookTimeoutMs',
    parse: secondsFrom(30, { min: 0, exclusive: true, why: 'with 0 every async hook times out' }),
    show: inSeconds,
  },
  {
    key: 'drainGrace',
    flags: '--drain-grace <s>',
    help: 'idle seconds before a draining keep-alive connection is closed (default 1)',
    doc: { default: '`1`', meaning: 'a draining keep-alive connection is closed once idle this long' },
    field: 'drainGraceMs',
    parse: secondsFrom(1),
    show: inSeconds,
  },
  {
    key: 'shutdownDelay',
    flags: '--shutdown-delay <s>',
    help: 'on stop, keep serving this long with the health path answering 503 (Kubernetes endpoints; default 0)',
    doc: {
      default: '`0`',
      meaning: 'on a stop, keep serving S seconds with the health path answering 503 first (Kubernetes)',
    },
    field: 'shutdownDelayMs',
    parse: secondsFrom(0),
    show: inSeconds,
  },
  {
    key: 'switchTimeout',
    flags: '--switch-timeout <s>',
    help: 'seconds a drain waits for long-polls (socket.io polling, markLongPoll): then a cluster hot restart switches without them, elsewhere they end (default 1)',
    doc: {
      default: '`1`',
      meaning:
        'a drain waits at most this long for long-polls (socket.io polling, `markLongPoll`); then a cluster hot restart switches without them ([docs/restarts.md](docs/restarts.md#long-lived-connections))',
    },
    field: 'switchTimeoutMs',
    parse: secondsFrom(1),
    show: inSeconds,
  },
  {
    key: 'longLivedGrace',
    flags: '--long-lived-grace <s>',
    help: 'seconds WebSockets and event streams get to close at a drain before nserve ends them (default 2)',
    doc: {
      default: '`2`',
      meaning:
        'WebSockets and event streams get this long to close at a drain, then nserve ends them cleanly ([docs/restarts.md](docs/restarts.md#long-lived-connections))',
    },
    field: 'longLivedGraceMs',
    parse: secondsFrom(2),
    show: inSeconds,
  },
  {
    key: 'keepAliveTimeout',
    flags: '--keep-alive-timeout <s>',
    help: "idle seconds a keep-alive connection stays open; behind a load balancer, longer than the balancer's idle timeout (default 5)",
    doc: {
      default: "the app's own, else `5`",
      meaning:
        'idle keep-alive connections; behind a load balancer, longer than its idle timeout (ALB: 60 s → `65`)',
    },
    field: 'keepAliveTimeoutMs',
    parse: optionalSeconds,
    show: inSecondsOrNull,
  },
  {
    key: 'headersTimeout',
    flags: '--headers-timeout <s>',
    help: 'seconds a client may take to send the request headers (default 60)',
    doc: { default: "the app's own, else `60`", meaning: "Node's `headersTimeout` (`0`: none)" },
    field: 'headersTimeoutMs',
    parse: optionalSeconds,
    show: inSecondsOrNull,
  },
  {
    key: 'requestTimeout',
    flags: '--request-timeout <s>',
    help: 'seconds a client may take to send a whole request; 0 = no limit (default 300)',
    doc: { default: "the app's own, else `300`", meaning: "Node's `requestTimeout` (`0`: none)" },
    field: 'requestTimeoutMs',
    parse: optionalSeconds,
    show: inSecondsOrNull,
  },
  {
    key: 'leakPolicy',
    flags: '--leak-policy <policy>',
    choices: LEAK_POLICIES,
    help: 'descriptors that would leak into a hot restart: close (default), warn, refuse',
    doc: {
      default: '`close`',
      meaning:
        'descriptors that would leak into a hot restart: `close`, `warn` or `refuse` ([docs](docs/descriptors.md))',
    },
    field: 'leakPolicy',
    parse: oneOf(LEAK_POLICIES, 'close'),
  },
  {
    key: 'restartOverflow',
    flags: '--restart-overflow <how>',
    choices: RESTART_OVERFLOWS,
    help: 'a cluster hot restart that does not fit in the memory limit: staged (default), phased or refuse',
    doc: {
      default: '`staged`',
      meaning:
        'a cluster hot restart whose new workers do not fit in the memory limit: `staged` (as many as fit, then the old ones drain, then the rest), `phased` or `refuse` ([docs](docs/deployment.md#memory-limits))',
    },
    field: 'restartOverflow',
    parse: oneOf(RESTART_OVERFLOWS, 'staged'),
  },
  {
    key: 'bootCheck',
    flags: '--boot-check',
    help: 'single mode: boot the new code in a separate process before a hot restart execs (default: exec at once, come back to the previous release if it fails)',
    doc: {
      default: 'off',
      meaning:
        "single mode: boot the new code in a separate process before a hot restart's exec (by default nserve execs at once and comes back to the previous release if the new one fails to boot; an app edited in place, with no other release to come back to, is checked first unless `bootCheck: false` is set: [docs/restarts.md](docs/restarts.md#hot-restart-single-mode))",
    },
    field: 'bootCheck',
    parse: bool,
  },
  {
    key: 'readyProbe',
    flags: '--ready-probe <path>',
    help: 'every new worker (and new code in single mode) must answer GET PATH with a 2xx, over a private socket, before it gets traffic',
    doc: {
      default: 'off',
      meaning:
        "each new worker (and new code in single mode) must answer `GET PATH` with a 2xx through the app's handler, over a private unix socket, before it gets traffic; a failure abandons the restart ([docs/restarts.md](docs/restarts.md#readiness-probe))",
    },
    field: 'readyProbe',
    parse: urlPath,
    show: orNull,
  },
  {
    key: 'readyProbeTimeout',
    flags: '--ready-probe-timeout <s>',
    help: 'seconds the ready probe may take (default 5)',
    doc: { default: '`5`', meaning: 'how long the ready probe may take (above `0`)' },
    field: 'readyProbeTimeoutMs',
    parse: secondsFrom(5, { min: 0, exclusive: true, why: 'the probe needs time to get an answer' }),
    show: inSeconds,
  },
  {
    key: 'canary',
    flags: '--canary <duration>',
    help: "phased restart: the first new worker serves alone for DURATION (e.g. 3s); a worse 5xx rate than the old workers' stops the rollout and brings the previous release back",
    doc: {
      default: 'off',
      meaning:
        "phased restarts (cluster mode): the first new worker serves its share alone for DURATION (`3s`, `500ms`); a 5xx rate significantly worse than the old workers' stops the rollout and the previous release takes its place again ([docs/restarts.md](docs/restarts.md#canary---canary))",
    },
    field: 'canaryMs',
    show: (ms: number | undefined) => (ms === undefined ? null : `${ms}ms`),
  },
  {
    key: 'phaseConcurrency',
    flags: '--phase-concurrency <n>',
    help: 'phased restart: replace N workers at a time, each replacement accepting before its old worker drains (default 1)',
    doc: {
      default: '`1`',
      meaning:
        'phased restarts replace N workers at a time (at most the worker count), each new worker accepting before its old one drains ([docs/restarts.md](docs/restarts.md#phase-concurrency---phase-concurrency))',
    },
    field: 'phaseConcurrency',
  },
  {
    key: 'standby',
    flags: '--standby <n>',
    help: "cluster mode: keep N worker processes started ahead of need (Node and nserve loaded, no app), so that a restart's or a replacement's new worker loads the app at once (default 0)",
    doc: {
      default: '`0`',
      meaning:
        "cluster mode: N worker processes kept started and waiting (Node and nserve loaded, not the app); a restart's, a replacement's or a new worker takes one and starts loading the app at once, and another is started once it booted. Each costs an idle Node process's memory ([docs/restarts.md](docs/restarts.md#standby-workers---standby))",
    },
    field: 'standby',
    parse: (key: string, v: Picked) => integer(key, v, 0, 64, 0),
  },
] as const satisfies readonly Setting[];
