// Start the real nserve CLI, read its JSON log lines, and make sure it dies with the test.
import { type ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { listFds, setCloexec } from '../../src/native/index.js';
import { childProcesses, procEntry } from '../../src/os/proc.js';
import { liveLoads } from './load.js';
import { LoggedProcess } from './logged-process.js';
import type { Cleanup } from './tmp.js';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
export const CLI = path.join(ROOT, 'bin/nserve.js');
export const FIXTURES = path.join(ROOT, 'test/fixtures');

import { until } from './logged-process.js';

export { isEvent, type LogLine, until } from './logged-process.js';
export { type Cleanup, tmpDir } from './tmp.js';

const started = new Set<ServerProcess>();

// Whatever launched the test runner may have left descriptors open without close-on-exec (a shell's
// pipes, say). They would be inherited by every server we start and show up as leaks there: keep them
// to ourselves, so each test sees only what nserve and its app open.
for (const f of listFds()) if (f.fd > 2 && !f.cloexec) setCloexec(f.fd, true);

/** Kill every process group we started; called from t.after and at process exit. */
export function killAll(): void {
  for (const load of liveLoads) load.halt();
  for (const srv of started) killGroup(srv.pid);
  started.clear();
}
process.on('exit', killAll);

function killGroup(pgid: number | undefined): void {
  if (pgid === undefined) return;
  try {
    process.kill(-pgid, 'SIGKILL');
  } catch {
    // group already gone
  }
}

/**
 * Under coverage (c8 sets NODE_V8_COVERAGE) a process writes its coverage only when it exits by itself:
 * `kill()` then asks for a graceful stop first and gives it this long before the SIGKILL.
 */
const COVERAGE = process.env.NODE_V8_COVERAGE !== undefined;
const COVERAGE_STOP_GRACE_MS = 3000;
/** Preloaded into every node process we start under coverage: see coverage-preload.ts. */
const COVERAGE_PRELOAD = path.join(ROOT, 'dist/test/helpers/coverage-preload.js');

/** A process started by the tests, in its own process group, killed with it at the end of the test. */
export class ServerProcess extends LoggedProcess {
  constructor(child: ChildProcess) {
    super(child, { echoEnv: 'NSERVE_TEST_VERBOSE' });
    started.add(this);
  }

  /** The first TCP port the server logged in its boot line. */
  async port(deadlineMs = 15000): Promise<number> {
    const booted = await this.waitForEvent('server.booted', deadlineMs);
    const binds = booted.binds as string[];
    const tcp = binds.find((b) => b.startsWith('tcp://'));
    if (tcp === undefined) throw new Error(`no tcp bind in ${JSON.stringify(binds)}`);
    return Number(tcp.slice(tcp.lastIndexOf(':') + 1));
  }

  /** SIGKILL the process group (after a graceful stop, bounded, when coverage is being collected). */
  async kill(): Promise<void> {
    if (!started.has(this)) return;
    if (COVERAGE && this.exitStatus === undefined) {
      try {
        process.kill(this.pid, 'SIGTERM');
        await Promise.race([this.exited, new Promise((r) => setTimeout(r, COVERAGE_STOP_GRACE_MS))]);
      } catch {
        // already gone
      }
    }
    killGroup(this.child.pid);
    started.delete(this);
  }
}

export interface StartOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
}

/** Run any command in its own process group (so the test can kill its children too), tracked for cleanup. */
export function startCommand(file: string, args: string[], options: StartOptions = {}): ServerProcess {
  const child = spawn(file, args, {
    cwd: options.cwd ?? ROOT,
    env: {
      ...process.env,
      NSERVE_TEST_VERBOSE: undefined,
      ...coverageEnv(),
      ...options.env,
      FORCE_COLOR: '0',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  return new ServerProcess(child);
}

function coverageEnv(): NodeJS.ProcessEnv {
  if (!COVERAGE) return {};
  return { NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --import=${COVERAGE_PRELOAD}`.trim() };
}

/** Run `nserve <args>`. */
export function startNserve(args: string[], options: StartOptions = {}): ServerProcess {
  return startCommand(process.execPath, [CLI, ...args], options);
}

/** Run nserve to completion (for commands that should fail fast). */
export async function runNserve(args: string[], options: StartOptions & { timeoutMs?: number } = {}) {
  const srv = startNserve(args, options);
  try {
    const exit = await srv.waitExit(options.timeoutMs ?? 15000);
    return { ...exit, stderr: srv.stderr, stdout: srv.lines };
  } finally {
    await srv.kill();
  }
}

/** Is a process still there (and not a zombie)? */
export function processAlive(pid: number): boolean {
  const entry = procEntry(pid);
  return entry !== undefined && entry.state !== 'Z';
}

/** Local ports of the TCP sockets in LISTEN state that `pid` holds. */
export function listeningPorts(pid: number): number[] {
  const inodes = new Set<string>();
  let fds: string[];
  try {
    fds = fs.readdirSync(`/proc/${pid}/fd`);
  } catch {
    return []; // the process is gone (a worker that has just exited)
  }
  for (const fd of fds) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(fs.readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m !== null) inodes.add(m[1]!);
    } catch {
      // closed meanwhile
    }
  }
  const ports: number[] = [];
  for (const table of ['tcp', 'tcp6']) {
    let text: string;
    try {
      text = fs.readFileSync(`/proc/${pid}/net/${table}`, 'utf8');
    } catch {
      return []; // the process is gone since its descriptors were read
    }
    for (const line of text.split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/);
      if (cols[3] === '0A' && cols[9] !== undefined && inodes.has(cols[9]))
        ports.push(Number.parseInt(cols[1]!.split(':')[1]!, 16));
    }
  }
  return ports;
}

/** Zombie (exited, not reaped) direct children of `pid`. */
export function zombiePids(pid: number): number[] {
  return childProcesses(pid)
    .filter((p) => p.state === 'Z')
    .map((p) => p.pid);
}

/** PIDs of the live (not zombie) direct children of `pid`. */
export function childPids(pid: number): number[] {
  return childProcesses(pid)
    .filter((p) => p.state !== 'Z')
    .map((p) => p.pid);
}

/**
 * Once `count` children of `master` run and none of them is one of `old`: the new workers' PIDs (a restart
 * that replaced every worker, its old ones gone).
 */
export function replacedWorkers(master: number, old: readonly number[], count: number, deadlineMs = 15_000) {
  return until(
    `${count} new workers, the old ones gone`,
    () => {
      const pids = childPids(master);
      return pids.length === count && pids.every((p) => !old.includes(p)) ? pids : undefined;
    },
    deadlineMs,
  );
}

export interface AppOptions {
  /** --directory: the app path is resolved there and it is the server's working directory. */
  directory?: string;
  /** -w N (cluster mode); single mode when absent. */
  workers?: number;
  /** The bind (default: an ephemeral loopback TCP port). */
  bind?: string;
  /** More command-line arguments. */
  args?: string[];
  env?: NodeJS.ProcessEnv;
  cwd?: string;
}

/** `nserve start APP …`, killed at the end of the test `t`. */
export function startApp(t: Cleanup, app: string, options: AppOptions = {}): ServerProcess {
  const srv = startNserve(
    [
      'start',
      app,
      ...(options.directory === undefined ? [] : ['--directory', options.directory]),
      ...(options.workers === undefined ? [] : ['-w', String(options.workers)]),
      '--bind',
      options.bind ?? 'tcp://127.0.0.1:0',
      ...(options.args ?? []),
    ],
    {
      ...(options.env === undefined ? {} : { env: options.env }),
      ...(options.cwd === undefined ? {} : { cwd: options.cwd }),
    },
  );
  t.after(() => srv.kill());
  return srv;
}

/** startApp, then wait until it has booted; returns the TCP port it serves. */
export async function serveApp(
  t: Cleanup,
  app: string,
  options: AppOptions = {},
): Promise<{ srv: ServerProcess; port: number }> {
  const srv = startApp(t, app, options);
  return { srv, port: await srv.port(20000) };
}

/** Serve `<root>/current/app.mjs` (a release made by makeReleases). */
export function serveCurrent(
  t: Cleanup,
  root: string,
  options: Omit<AppOptions, 'directory'> = {},
): Promise<{ srv: ServerProcess; port: number }> {
  return serveApp(t, 'app.mjs', { ...options, directory: path.join(root, 'current') });
}

/** A loopback TCP port nobody listens on now (it may be taken again before it is used: tests only). */
export async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}
