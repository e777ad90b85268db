// Start the real nserve CLI, read its JSON log lines, and make sure it dies with the test.
import { type ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { listFds, setCloexec } from '../../src/native.js';
import { childProcesses, procEntry } from '../../src/proc.js';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
export const CLI = path.join(ROOT, 'bin/nserve.js');
export const FIXTURES = path.join(ROOT, 'test/fixtures');

export type LogLine = Record<string, unknown> & { msg?: string; level?: number; pid?: number };

const started = new Set<ChildProcess>();

// Whatever launched the test runner may have left descriptors open without close-on-exec (a shell's
// pipes, say). They would be inherited by every server we start and show up as leaks there: keep them
// to ourselves, so each test sees only what nserve and its app open.
for (const f of listFds()) if (f.fd > 2 && !f.cloexec) setCloexec(f.fd, true);

/** Kill every process group we started; called from t.after and at process exit. */
export function killAll(): void {
  for (const child of started) killGroup(child);
  started.clear();
}
process.on('exit', killAll);

function killGroup(child: ChildProcess): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, 'SIGKILL');
  } catch {
    // group already gone
  }
}

export class ServerProcess {
  readonly lines: LogLine[] = [];
  stderr = '';
  private waiters: { pred: (l: LogLine) => boolean; resolve: (l: LogLine) => void }[] = [];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  constructor(readonly child: ChildProcess) {
    let buf = '';
    child.stdout!.setEncoding('utf8');
    child.stdout!.on('data', (chunk: string) => {
      buf += chunk;
      let nl = buf.indexOf('\n');
      while (nl !== -1) {
        const raw = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        nl = buf.indexOf('\n');
        let line: LogLine;
        try {
          line = JSON.parse(raw) as LogLine;
        } catch {
          line = { msg: raw, raw: true };
        }
        this.lines.push(line);
        if (process.env.NSERVE_TEST_VERBOSE) process.stderr.write(`[srv] ${raw}\n`);
        this.waiters = this.waiters.filter((w) => {
          if (!w.pred(line)) return true;
          w.resolve(line);
          return false;
        });
      }
    });
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (chunk: string) => {
      this.stderr += chunk;
      if (process.env.NSERVE_TEST_VERBOSE) process.stderr.write(`[srv:err] ${chunk}`);
    });
    this.exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  }

  get pid(): number {
    return this.child.pid!;
  }

  /** Wait for a log line matching `pred` (searching lines already seen from index `from`). */
  waitForLog(what: string, pred: (l: LogLine) => boolean, timeoutMs = 15000, from = 0): Promise<LogLine> {
    const seen = this.lines.slice(from).find(pred);
    if (seen !== undefined) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(
          new Error(
            `timed out after ${timeoutMs} ms waiting for log: ${what}\nstderr: ${this.stderr}\nlast lines:\n${this.lines
              .slice(-15)
              .map((l) => JSON.stringify(l))
              .join('\n')}`,
          ),
        );
      }, timeoutMs);
      this.waiters.push({
        pred,
        resolve: (l) => {
          clearTimeout(timer);
          resolve(l);
        },
      });
    });
  }

  waitForMsg(msg: string | RegExp, timeoutMs = 15000, from = 0): Promise<LogLine> {
    const match = (l: LogLine): boolean =>
      typeof msg === 'string' ? l.msg === msg : msg.test(String(l.msg ?? ''));
    return this.waitForLog(String(msg), match, timeoutMs, from);
  }

  /** The first TCP port the server logged in its boot line. */
  async port(timeoutMs = 15000): Promise<number> {
    const booted = await this.waitForMsg('nserve booted', timeoutMs);
    const binds = booted.binds as string[];
    const tcp = binds.find((b) => b.startsWith('tcp://'));
    if (tcp === undefined) throw new Error(`no tcp bind in ${JSON.stringify(binds)}`);
    return Number(tcp.slice(tcp.lastIndexOf(':') + 1));
  }

  signal(sig: NodeJS.Signals): void {
    process.kill(this.pid, sig);
  }

  async waitExit(timeoutMs = 15000): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`server pid ${this.pid} did not exit within ${timeoutMs} ms`)),
        timeoutMs,
      );
    });
    try {
      return await Promise.race([this.exited, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  kill(): void {
    killGroup(this.child);
    started.delete(this.child);
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
    env: { ...process.env, NSERVE_TEST_VERBOSE: undefined, ...options.env, FORCE_COLOR: '0' },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  started.add(child);
  return new ServerProcess(child);
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
    srv.kill();
  }
}

export function tmpDir(prefix = 'nserve-test-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

/** Is a process still there (and not a zombie)? */
export function processAlive(pid: number): boolean {
  const entry = procEntry(pid);
  return entry !== undefined && entry.state !== 'Z';
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

export async function until<T>(
  what: string,
  fn: () => T | undefined | false | Promise<T | undefined | false>,
  timeoutMs = 10000,
  everyMs = 50,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** Serve `<root>/current/app.mjs` (a release made by makeReleases) on an ephemeral loopback port. */
export async function serveCurrent(
  t: { after(fn: () => void): void },
  root: string,
  extra: string[] = [],
): Promise<{ srv: ServerProcess; port: number }> {
  const srv = startNserve([
    'start',
    'app.mjs',
    '--directory',
    path.join(root, 'current'),
    '--bind',
    'tcp://127.0.0.1:0',
    ...extra,
  ]);
  t.after(() => srv.kill());
  return { srv, port: await srv.port(20000) };
}
