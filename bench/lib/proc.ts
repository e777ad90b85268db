// Processes the benchmark starts: each in its own process group, killed by group on every way out
// (normal end, failure, Ctrl-C). Plus small /proc readers (CPU ticks, RSS, children) and HTTP probes.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { childProcesses } from '../../src/os/proc.js';
import { isEvent, LoggedProcess, now } from '../../test/helpers/logged-process.js';

function findRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (fs.existsSync(path.join(dir, 'binding.gyp'))) return dir;
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error('bench: cannot find the package root (binding.gyp)');
    dir = parent;
  }
}

export const ROOT = findRoot();
export const FIXTURES = path.join(ROOT, 'bench', 'fixtures');
export const NSERVE_CLI = path.join(ROOT, 'bin', 'nserve.js');

export { isEvent, now };
export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Process groups to SIGKILL at exit (ours and e.g. the PM2 daemon's). */
const groups = new Set<number>();
const cleanups: (() => void)[] = [];

export function trackGroup(pgid: number): void {
  groups.add(pgid);
}

export function untrackGroup(pgid: number): void {
  groups.delete(pgid);
}

export function onCleanup(fn: () => void): void {
  cleanups.push(fn);
}

export function killGroup(pgid: number, signal: NodeJS.Signals = 'SIGKILL'): void {
  try {
    process.kill(-pgid, signal);
  } catch {
    // already gone
  }
}

/** Synchronous: safe in 'exit' handlers. */
export function cleanupAll(): void {
  for (const fn of cleanups.splice(0)) {
    try {
      fn();
    } catch {
      // best effort
    }
  }
  for (const g of groups) killGroup(g);
  groups.clear();
}

let installed = false;
export function installCleanupHandlers(): void {
  if (installed) return;
  installed = true;
  process.on('exit', cleanupAll);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(sig, () => {
      process.stderr.write(`\nbench: ${sig}: killing every process it started\n`);
      cleanupAll();
      process.exit(130);
    });
  }
}

export type { LogLine } from '../../test/helpers/logged-process.js';

/** A child in its own process group whose stdout is read as JSON lines (test/helpers/logged-process.ts). */
export class Proc extends LoggedProcess {
  constructor(child: ChildProcess) {
    if (child.pid === undefined) throw new Error('spawn failed');
    super(child, { echoEnv: 'BENCH_VERBOSE', stderrLimit: 8000 });
    trackGroup(child.pid);
  }

  /** Ask nicely (signal to the leader), then SIGKILL the whole group. */
  async stop(signal: NodeJS.Signals = 'SIGTERM', graceMs = 3000): Promise<void> {
    if (this.exitStatus === undefined) {
      try {
        process.kill(this.pid, signal);
      } catch {
        // gone
      }
      await Promise.race([this.exited, sleep(graceMs)]);
    }
    killGroup(this.pid);
    untrackGroup(this.pid);
  }
}

export function start(
  file: string,
  args: string[],
  options: { env?: NodeJS.ProcessEnv; cwd?: string } = {},
): Proc {
  const child = spawn(file, args, {
    cwd: options.cwd ?? ROOT,
    env: { ...process.env, ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  return new Proc(child);
}

export function startNode(script: string, args: string[], env: NodeJS.ProcessEnv = {}): Proc {
  return start(process.execPath, [script, ...args], { env });
}

/** A port that was free a moment ago on 127.0.0.1. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

export interface Reply {
  status: number;
  body: Record<string, unknown>;
}

/** One GET on a new connection; rejects on any error. */
export function getJson(port: number, urlPath = '/', timeoutMs = 5000): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.get(
      { host: '127.0.0.1', port, path: urlPath, agent: false, timeout: timeoutMs },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => {
          let body: Record<string, unknown> = {};
          try {
            body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>;
          } catch {
            // not JSON
          }
          resolve({ status: res.statusCode ?? 0, body });
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}

export async function until<T>(
  what: string,
  fn: () => T | undefined | false | Promise<T | undefined | false>,
  timeoutMs: number,
  everyMs = 20,
): Promise<T> {
  const deadline = now() + timeoutMs;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined && v !== false) return v;
    } catch {
      // not yet
    }
    if (now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

/** Wait until the port answers 2xx. */
export function waitServing(port: number, timeoutMs = 20000): Promise<Reply> {
  return until(
    `127.0.0.1:${port} to answer`,
    async () => {
      const r = await getJson(port, '/', 2000);
      return r.status >= 200 && r.status < 300 ? r : undefined;
    },
    timeoutMs,
  );
}

// ── /proc ─────────────────────────────────────────────────────────────────────────────────────────────

let clkTck = 100;
try {
  clkTck = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
} catch {
  // keep 100
}

/** utime+stime of a process, in ms; undefined once it is gone. */
export function cpuMs(pid: number): number | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // fields[0] is field 3 (state): utime is field 14, stime field 15.
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / clkTck;
  } catch {
    return undefined;
  }
}

/** Resident set size in bytes. */
export function rssBytes(pid: number): number | undefined {
  return statusBytes(pid, 'VmRSS');
}

/**
 * RssAnon: the process's anonymous resident memory (heap, stacks, malloc), what one more such process
 * really adds; RSS also counts the file-backed pages (the `node` binary's code) that every process shares.
 */
export function anonBytes(pid: number): number | undefined {
  return statusBytes(pid, 'RssAnon');
}

function statusBytes(pid: number, field: 'VmRSS' | 'RssAnon'): number | undefined {
  try {
    const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status);
    return m ? Number(m[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

/** Live (non-zombie) direct children of pid. */
export function childPids(pid: number): number[] {
  return childProcesses(pid)
    .filter((p) => p.state !== 'Z')
    .map((p) => p.pid);
}

export function tmpDir(prefix: string): string {
  const dir = fs.mkdtempSync(path.join(fs.realpathSync(os.tmpdir()), prefix));
  onCleanup(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}
