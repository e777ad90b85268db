// Entry point: `npm run bench -- <suite> [options]` (= npm run build && node dist/bench/run.js ...).
// See bench/README.md.
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { dashboardSuite } from './dashboard.js';
import { footprintSuite } from './footprint.js';
import { defaultOut } from './lib/machine.js';
import { cleanupAll, installCleanupHandlers, ROOT } from './lib/proc.js';
import { installBenchDeps } from './lib/setup.js';
import { LONGLIVED_SYSTEMS, longLivedSuite } from './longlived.js';
import { MEMORY_STRATEGIES, memorySuite } from './memory.js';
import { metricsSuite } from './metrics.js';
import { DEFAULT_RESTART_SYSTEMS, RESTART_SYSTEMS, restartSuite } from './restart.js';
import {
  DEFAULT_WINDOW_DELAYS,
  DEFAULT_WINDOW_SIGNALS,
  SIGNAL_WINDOW_MODES,
  type SignalWindowMode,
  signalWindowSuite,
} from './signal-window.js';
import { DEFAULT_THROUGHPUT_SYSTEMS, THROUGHPUT_SYSTEMS, throughputSuite } from './throughput.js';

const USAGE = `usage: node dist/bench/run.js <restart|throughput|longlived|footprint|metrics|dashboard|memory|signal-window|all> [options]

common:
  --rounds N         interleaved rounds, every system once per round (default 2, restart 3; --quick: 1)
  --quick            a ~1 minute smoke run
  --systems a,b      which systems (default: all listed below)
  --out FILE         result JSON (default bench/results/<suite>-<date>.json; the SVG goes next to it)

restart:
  --restarts N       restarts per run (default 3; --quick: 1)
  --boot-ms MS       the app's boot delay (default 1000)
  --single-boot-ms MS  the app's boot delay for the single-mode system nserve-hot (default: --boot-ms)
  --timeout-ms MS    client timeout per request (default 15000)
  --steady-ms MS     load before the first restart (default 1500)
  --gap-ms MS        pause after each restart has completed (default 1000)
  systems: ${RESTART_SYSTEMS.map((s) => s.name).join(', ')}
           (default: ${DEFAULT_RESTART_SYSTEMS.join(', ')})

longlived (restarts with WebSocket and event-stream clients open; not part of "all"):
  --restarts N       restarts per run (default 1)
  --boot-ms MS       the app's boot delay in cluster mode (default 1500)
  --single-boot-ms MS  the app's boot delay in single mode (default 800)
  --timeout-ms MS, --steady-ms MS, --gap-ms MS  as for restart
  --ws N, --sse N    WebSocket and event-stream clients (default 8 and 2)
  --drain-api        the app closes its WebSockets itself (1012) from nserve's onDrain hook
  systems: ${LONGLIVED_SYSTEMS.map((s) => s.name).join(', ')} (default: all)

footprint (start-up and RSS against plain node and Node cluster; not part of "all"):
  --peak             also the tree's peak RSS through a cluster hot restart (issue 17, goal 6)
  --peak-workers N   workers for --peak (default 8)
  --before DIR       also nserve from another build (DIR/bin/nserve.js), interleaved: before/after in one run
  --boot-ms MS       the app's boot for --peak (default 1500)

metrics (issue 19: keep-alive throughput and CPU per request, metrics off/on/scraped; not part of "all"):
  --rounds N         (default 5)   --duration S (default 5)   --connections N (default 32)
  --workers N        0 = single mode (default 2)
  --modes a,b        off, on (never scraped), Ns (scraped every N s) (default off,on,1s,15s);
                     base:<mode> runs <mode> with the checkout given by --base DIR (before/after)

dashboard (an open dashboard's cost to the workers: req/s and CPU per request, closed vs open; not part of "all"):
  --rounds N (default 5)   --duration S (default 5)   --connections N (default 32)   --workers N (default 2)
memory (a cluster restart in a cgroup v1 memory limit, per strategy; root; not part of "all"):
  --rounds N         (default 1)
  --workers N        (default 4)   --hold-mb MB  anonymous memory each app process holds (default 64)
  --systems a,b      ${MEMORY_STRATEGIES.join(', ')} (default: all)

signal-window (SIGTERM/SIGINT/USR2/HUP right after a hot restart's exec: fatal or not; not part of "all"):
  --nodes a,b        paths of node binaries to run nserve with (default: the node running the bench)
  --signals a,b      (default ${DEFAULT_WINDOW_SIGNALS.join(',')})
  --delays a,b       ms after the restart.hot.exec log line (default ${DEFAULT_WINDOW_DELAYS[0]} to ${DEFAULT_WINDOW_DELAYS.at(-1)} in 10 ms steps)
  --modes a,b        single, cluster (= -w 2) (default both)
  --rounds N         (default 2)

throughput:
  --duration S       seconds per measurement (default 4; --quick: 2)
  --warmup S         seconds of discarded load before each (default 1; wrk takes whole seconds)
  --connections N    load generator connections (default 50)
  --loadgen NAME     wrk (default when installed) or autocannon
  --apps a,b         hello, cpu (default both; --quick: hello)
  --loads a,b        keepalive, close (default both)
  --cpu-ms MS        work per request of the cpu app (default 1)
  systems: ${THROUGHPUT_SYSTEMS.map((s) => s.name).join(', ')}
           (default: ${DEFAULT_THROUGHPUT_SYSTEMS.join(', ')})
`;

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      rounds: { type: 'string' },
      quick: { type: 'boolean', default: false },
      systems: { type: 'string' },
      out: { type: 'string' },
      restarts: { type: 'string' },
      'boot-ms': { type: 'string' },
      'timeout-ms': { type: 'string' },
      'steady-ms': { type: 'string' },
      'gap-ms': { type: 'string' },
      'single-boot-ms': { type: 'string' },
      ws: { type: 'string' },
      'drain-api': { type: 'boolean', default: false },
      peak: { type: 'boolean', default: false },
      'peak-workers': { type: 'string' },
      before: { type: 'string' },
      sse: { type: 'string' },
      duration: { type: 'string' },
      warmup: { type: 'string' },
      connections: { type: 'string' },
      loadgen: { type: 'string' },
      apps: { type: 'string' },
      loads: { type: 'string' },
      'cpu-ms': { type: 'string' },
      workers: { type: 'string' },
      modes: { type: 'string' },
      base: { type: 'string' },
      nodes: { type: 'string' },
      'hold-mb': { type: 'string' },
      signals: { type: 'string' },
      delays: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  const suite = positionals[0];
  if (
    values.help ||
    suite === undefined ||
    ![
      'restart',
      'throughput',
      'longlived',
      'footprint',
      'metrics',
      'dashboard',
      'memory',
      'signal-window',
      'all',
    ].includes(suite)
  ) {
    process.stdout.write(USAGE);
    process.exitCode = values.help ? 0 : 2;
    return;
  }
  const num = (name: string, v: string | undefined, dflt: number): number => {
    if (v === undefined) return dflt;
    const n = Number(v);
    if (!Number.isFinite(n) || n < 0)
      throw new Error(`--${name}: expected a number, got ${JSON.stringify(v)}`);
    return n;
  };
  const list = (v: string | undefined, dflt: string[]): string[] =>
    v === undefined
      ? dflt
      : v
          .split(',')
          .map((s) => s.trim())
          .filter(Boolean);
  const quick = values.quick ?? false;
  const rounds = num('rounds', values.rounds, quick ? 1 : 2);
  installCleanupHandlers();
  // PM2 and autocannon live in bench/package.json, installed on first use (bench/lib/setup.ts).
  installBenchDeps();
  const outFor = (name: string): string =>
    values.out !== undefined && suite !== 'all' ? path.resolve(INVOKED_FROM, values.out) : defaultOut(name);

  if (suite === 'restart' || suite === 'all') {
    await restartSuite({
      rounds: num('rounds', values.rounds, quick ? 1 : 3),
      quick,
      restarts: num('restarts', values.restarts, quick ? 1 : 3),
      bootMs: num('boot-ms', values['boot-ms'], 1000),
      singleBootMs: num('single-boot-ms', values['single-boot-ms'], num('boot-ms', values['boot-ms'], 1000)),
      timeoutMs: num('timeout-ms', values['timeout-ms'], 15000),
      steadyMs: num('steady-ms', values['steady-ms'], quick ? 1000 : 1500),
      gapMs: num('gap-ms', values['gap-ms'], 1000),
      systems: list(values.systems, DEFAULT_RESTART_SYSTEMS),
      out: outFor('restart'),
    });
  }
  if (suite === 'footprint') {
    await footprintSuite({
      rounds: num('rounds', values.rounds, 3),
      peak: values.peak ?? false,
      peakWorkers: num('peak-workers', values['peak-workers'], 8),
      bootMs: num('boot-ms', values['boot-ms'], 1500),
      out: outFor('footprint'),
      before: values.before === undefined ? undefined : path.resolve(INVOKED_FROM, values.before),
    });
  }
  if (suite === 'metrics') {
    await metricsSuite({
      rounds: num('rounds', values.rounds, quick ? 1 : 5),
      durationS: num('duration', values.duration, quick ? 2 : 5),
      warmupS: num('warmup', values.warmup, 1),
      connections: num('connections', values.connections, 32),
      loadgen: values.loadgen,
      workers: num('workers', values.workers, 2),
      modes: list(values.modes, ['off', 'on', '1s', '15s']),
      base: values.base === undefined ? undefined : path.resolve(INVOKED_FROM, values.base),
      out: outFor('metrics'),
    });
  }
  if (suite === 'dashboard') {
    await dashboardSuite({
      rounds: num('rounds', values.rounds, quick ? 1 : 5),
      durationS: num('duration', values.duration, quick ? 2 : 5),
      warmupS: num('warmup', values.warmup, 1),
      connections: num('connections', values.connections, 32),
      loadgen: values.loadgen,
      workers: num('workers', values.workers, 2),
      out: outFor('dashboard'),
    });
  }
  if (suite === 'memory') {
    await memorySuite({
      rounds: num('rounds', values.rounds, 1),
      workers: num('workers', values.workers, 4),
      holdMb: num('hold-mb', values['hold-mb'], 64),
      strategies: list(values.systems, [...MEMORY_STRATEGIES]),
      out: outFor('memory'),
    });
  }
  if (suite === 'signal-window') {
    const modes = list(values.modes, [...SIGNAL_WINDOW_MODES]);
    for (const mode of modes)
      if (!(SIGNAL_WINDOW_MODES as readonly string[]).includes(mode))
        throw new Error(`--modes: expected ${SIGNAL_WINDOW_MODES.join(' or ')}, got ${JSON.stringify(mode)}`);
    const signals = list(values.signals, [...DEFAULT_WINDOW_SIGNALS]).map((s) =>
      s.toUpperCase().startsWith('SIG') ? s.toUpperCase() : `SIG${s.toUpperCase()}`,
    );
    for (const sig of signals)
      if (!(sig in os.constants.signals)) throw new Error(`--signals: unknown signal ${JSON.stringify(sig)}`);
    await signalWindowSuite({
      nodes: list(values.nodes, [process.execPath]).map((n) => path.resolve(INVOKED_FROM, n)),
      signals: signals as NodeJS.Signals[],
      delays: list(values.delays, DEFAULT_WINDOW_DELAYS.map(String)).map((d) => num('delays', d, 0)),
      modes: modes as SignalWindowMode[],
      rounds: num('rounds', values.rounds, 2),
      out: outFor('signal-window'),
    });
  }
  if (suite === 'longlived') {
    await longLivedSuite({
      rounds,
      restarts: num('restarts', values.restarts, 1),
      bootMs: num('boot-ms', values['boot-ms'], 1500),
      singleBootMs: num('single-boot-ms', values['single-boot-ms'], 800),
      timeoutMs: num('timeout-ms', values['timeout-ms'], 15000),
      steadyMs: num('steady-ms', values['steady-ms'], 1500),
      gapMs: num('gap-ms', values['gap-ms'], 1000),
      ws: num('ws', values.ws, 8),
      sse: num('sse', values.sse, 2),
      drainApi: values['drain-api'] ?? false,
      systems: list(
        values.systems,
        LONGLIVED_SYSTEMS.map((s) => s.name),
      ),
      out: outFor('longlived'),
    });
  }
  if (suite === 'throughput' || suite === 'all') {
    await throughputSuite({
      rounds,
      quick,
      durationS: num('duration', values.duration, quick ? 2 : 4),
      warmupS: num('warmup', values.warmup, 1),
      connections: num('connections', values.connections, 50),
      loadgen: values.loadgen,
      apps: list(values.apps, quick ? ['hello'] : ['hello', 'cpu']),
      loads: list(values.loads, ['keepalive', 'close']),
      cpuMs: num('cpu-ms', values['cpu-ms'], 1),
      systems: list(values.systems, DEFAULT_THROUGHPUT_SYSTEMS),
      out: outFor('throughput'),
    });
  }
}

const INVOKED_FROM = process.cwd();
process.chdir(ROOT);
main()
  .catch((err: unknown) => {
    process.stderr.write(`bench: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exitCode = 1;
  })
  .finally(() => {
    cleanupAll();
    // Agents, PM2's RPC sockets and timers must not keep us alive.
    setTimeout(() => process.exit(), 200).unref();
  });
