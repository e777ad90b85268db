// Which of nserve's modules each role loads (issue 29, "Footprint"): every module costs each process
// memory (~30 KB of loader state on top of its code; docs/benchmarks.md), so each role loads only what it
// runs. A worker loads none of the master's modules (the cluster master, the control server and its
// routes, the metrics store, the dashboard, the restart machinery, the memory budget, the binder, the
// commander CLI and `nserve config`'s printer); a master loads the control server only when configured,
// the dashboard only once a dashboard request comes, and prom-client only once something scrapes. Each
// process records what it loaded (test/fixtures/modules/record.mjs, preloaded through NODE_OPTIONS,
// which the master passes on to its workers), so a cut cannot silently come undone.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, test } from 'node:test';
import { controlRequest } from '../helpers/control.js';
import { childPids, FIXTURES, killAll, ROOT, startApp, tmpDir, until } from '../helpers/server.js';

after(killAll);

const RECORDER = path.join(FIXTURES, 'modules/record.mjs');
const SRC = `${path.join(ROOT, 'dist/src')}/`;

interface Loaded {
  /** nserve's own modules, relative to dist/src (`cluster/worker.js`). */
  own: Set<string>;
  /** npm packages loaded through require (`pino`, `prom-client`). */
  packages: Set<string>;
  /** Node's own modules (`NativeModule internal/deps/undici/undici`). */
  builtins: string[];
}

function recordEnv(dir: string): NodeJS.ProcessEnv {
  return {
    NSERVE_TEST_RECORD_DIR: dir,
    NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --import=${RECORDER}`.trim(),
  };
}

/** What `pid` has loaded, as recorded at `since` or later (the recorder rewrites its file every 100 ms). */
async function loaded(dir: string, pid: number, since: number): Promise<Loaded> {
  const file = path.join(dir, `${pid}.json`);
  const text = await until(
    `process ${pid}'s module record`,
    () => {
      try {
        return fs.statSync(file).mtimeMs >= since ? fs.readFileSync(file, 'utf8') : undefined;
      } catch {
        return undefined; // not written yet
      }
    },
    10_000,
  );
  const record = JSON.parse(text) as { esm: string[]; cjs: string[]; builtins: string[] };
  const own = new Set<string>();
  for (const url of record.esm) {
    const file = url.startsWith('file://') ? new URL(url).pathname : '';
    if (file.startsWith(SRC)) own.add(file.slice(SRC.length));
  }
  const packages = new Set<string>();
  for (const file of record.cjs) {
    const m = /\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(file);
    if (m !== null) packages.add(m[1]!);
  }
  return { own, packages, builtins: record.builtins };
}

/** After the loads of the next 300 ms are recorded: a time to pass to `loaded`. */
async function settled(): Promise<number> {
  await new Promise((r) => setTimeout(r, 300));
  return Date.now();
}

/** The modules of `folder/` a worker may load; any other module of these folders is the master's. */
const WORKER_MAY_LOAD: Record<string, readonly string[]> = {
  cli: ['exit.js', 'start-entry.js', 'start-options.js', 'start.js'],
  cluster: ['channel.js', 'protocol.js', 'worker-heartbeat.js', 'worker-replies.js', 'worker.js'],
  control: ['api.js'],
  dashboard: [],
  launcher: [],
  listen: ['bind-uri.js', 'tls.js'],
  memory: ['fit.js'],
  // At a scrape, a worker answers with its own process metrics (prom-client's defaults): worker-reply.ts.
  metrics: ['requests.js', 'worker-reply.js', 'expose.js', 'json.js'],
  modes: [],
  restart: ['handoff.js'],
};
const NEVER_IN_A_WORKER = ['config/describe.js', 'config/env-file.js'];

function masterModulesIn(worker: Loaded): string[] {
  return [...worker.own].filter((m) => {
    const [folder, name] = m.split('/');
    const allowed = folder === undefined || name === undefined ? undefined : WORKER_MAY_LOAD[folder];
    return (allowed !== undefined && !allowed.includes(name!)) || NEVER_IN_A_WORKER.includes(m);
  });
}

const CONTROL_MODULES = [
  'control/server.js',
  'control/plane.js',
  'control/answers.js',
  'control/endpoints.js',
];
const METRICS_MODULES = [
  'metrics/metrics-plane.js',
  'metrics/store.js',
  'metrics/expose.js',
  'metrics/cluster.js',
];
const inFolder = (l: Loaded, folder: string): string[] =>
  [...l.own].filter((m) => m.startsWith(`${folder}/`));

/**
 * Node's modules that only an ES import of node:http (Node 22+: its lazy WebSocket is undici's) or of
 * node:crypto (webcrypto) would load here: nserve takes those builtins through process.getBuiltinModule.
 * (The app, examples/hello.mjs, imports nothing.)
 */
const unwantedBuiltins = (l: Loaded): string[] =>
  l.builtins.filter((m) => m.endsWith('/deps/undici/undici') || m.endsWith('/crypto/webcrypto'));

test('cluster, default options: the worker loads none of the master modules; the master no control, metrics or dashboard module', async (t) => {
  const dir = tmpDir(t);
  const srv = startApp(t, 'examples/hello.mjs', { workers: 1, env: recordEnv(dir) });
  await srv.port(20_000);
  const since = await settled();
  const [workerPid] = childPids(srv.pid);
  assert.ok(workerPid !== undefined, 'a worker runs');
  const master = await loaded(dir, srv.pid, since);
  const worker = await loaded(dir, workerPid, since);
  // The recorder sees both roles' modules (a broken recorder would pass everything below).
  assert.ok(master.own.has('cluster/master.js'), [...master.own].join(' '));
  assert.ok(
    worker.own.has('cluster/worker.js') && worker.own.has('server/index.js'),
    [...worker.own].join(' '),
  );
  assert.ok(worker.packages.has('pino'), 'the worker logs with pino');

  assert.deepEqual(masterModulesIn(worker), [], 'master modules loaded by the worker');
  assert.deepEqual(
    [...worker.packages].filter((p) => p === 'commander' || p === 'prom-client'),
    [],
    'packages a worker has no use for',
  );
  assert.deepEqual(
    [...CONTROL_MODULES, ...METRICS_MODULES].filter((m) => master.own.has(m)),
    [],
    'control and metrics modules loaded by a master that has neither',
  );
  assert.deepEqual(inFolder(master, 'dashboard'), []);
  assert.deepEqual(inFolder(master, 'server'), [], 'the master serves no HTTP');
  assert.ok(!master.own.has('cli/program.js') && !master.packages.has('commander'), 'no commander');
  assert.ok(!master.packages.has('prom-client'));
  assert.deepEqual(unwantedBuiltins(master), []);
  assert.deepEqual(unwantedBuiltins(worker), []);
});

test('cluster with a control server (and so metrics): the dashboard loads at its first request, prom-client at the first scrape; the worker loads no master module', async (t) => {
  const dir = tmpDir(t);
  const socket = path.join(tmpDir(t), 'control.sock');
  const srv = startApp(t, 'examples/hello.mjs', {
    workers: 1,
    env: recordEnv(dir),
    args: ['--control-url', `unix://${socket}`],
  });
  await srv.port(20_000);
  await srv.waitForEvent('control.server.listening');
  const [workerPid] = childPids(srv.pid);
  assert.ok(workerPid !== undefined, 'a worker runs');

  let since = await settled();
  let master = await loaded(dir, srv.pid, since);
  let worker = await loaded(dir, workerPid, since);
  assert.ok(master.own.has('control/server.js'), [...master.own].join(' '));
  // dashboard/paths.ts (a leaf) tells the control server a dashboard request.
  assert.deepEqual(
    inFolder(master, 'dashboard').filter((m) => m !== 'dashboard/paths.js'),
    [],
    'dashboard modules before any dashboard request',
  );
  assert.ok(!master.packages.has('prom-client'), 'prom-client in the master before any scrape');
  assert.ok(!worker.packages.has('prom-client'), 'prom-client in the worker before any scrape');
  assert.deepEqual(masterModulesIn(worker), [], 'master modules loaded by the worker');

  const view = await controlRequest(socket, 'GET', '/dashboard/view');
  assert.equal(view.status, 200, view.text);
  assert.ok(Array.isArray(view.body.workers), view.text);
  const metrics = await controlRequest(socket, 'GET', '/metrics');
  assert.equal(metrics.status, 200, metrics.text);

  since = await settled();
  master = await loaded(dir, srv.pid, since);
  worker = await loaded(dir, workerPid, since);
  assert.ok(master.own.has('dashboard/routes.js'), 'the dashboard, loaded for its request');
  assert.ok(master.packages.has('prom-client'), 'prom-client, loaded for the scrape');
  assert.deepEqual(masterModulesIn(worker), [], 'master modules loaded by the worker');
  assert.ok(!worker.packages.has('commander'));
  assert.deepEqual(unwantedBuiltins(master), [], 'the control server, its dashboard and its metrics');
  assert.deepEqual(unwantedBuiltins(worker), []);
});
