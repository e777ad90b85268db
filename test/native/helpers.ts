// Shared by the native tests: fixture paths, child processes that are killed
// by PID even when a test fails, and waits that always have a deadline.
import { type ChildProcess, type SpawnOptions, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type { TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';
import * as native from '../../src/native/index.js';

function findRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'binding.gyp'))) {
    const parent = dirname(dir);
    if (parent === dir) throw new Error('package root (binding.gyp) not found');
    dir = parent;
  }
  return dir;
}

export const ROOT = findRoot();

export function fixture(name: string): string {
  return join(ROOT, 'test', 'fixtures', 'native', name);
}

/** A temporary directory removed after the test. */
export function tempDir(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'nserve-native-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

export function killPid(pid: number | undefined): void {
  if (pid === undefined) return;
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

/** Rejects with a message naming what was awaited when `ms` passes first. */
export function deadline<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Polls `check` every few ms until it returns a value other than undefined. */
export async function until<T>(check: () => T | undefined, ms: number, what: string): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const value = check();
    if (value !== undefined) return value;
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

export interface ExitResult {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** A child process with its output collected; killed by PID after the test. */
export class Child {
  readonly process: ChildProcess;
  readonly pid: number;
  stdout = '';
  stderr = '';
  private readonly exit: Promise<ExitResult>;

  constructor(t: TestContext, file: string, args: readonly string[], options: SpawnOptions = {}) {
    this.process = spawn(file, args, { stdio: ['ignore', 'pipe', 'pipe'], ...options });
    if (this.process.pid === undefined) throw new Error(`could not spawn ${file}`);
    this.pid = this.process.pid;
    t.after(() => killPid(this.pid));
    this.process.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
      this.stdout += chunk;
    });
    this.process.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
      this.stderr += chunk;
    });
    this.exit = new Promise((resolve, reject) => {
      this.process.on('error', reject);
      this.process.on('close', (code, signal) => resolve({ code, signal }));
    });
  }

  /** The first complete stdout line matching `predicate`. */
  line(what: string, predicate: (line: string) => boolean, ms = 10_000): Promise<string> {
    const find = () => this.stdout.split('\n').slice(0, -1).find(predicate);
    const exited = this.exit.then(() => {
      const found = find(); // all output is in once 'close' fired
      if (found !== undefined) return found;
      throw new Error(`child exited before printing ${what}; stderr: ${this.stderr}`);
    });
    exited.catch(() => {});
    return deadline(
      Promise.race([until(find, ms + 1000, what), exited]),
      ms,
      `${what}; stderr: ${this.stderr}`,
    );
  }

  /** The first stdout line that parses as a JSON object with `key`. */
  async json<T>(key: string, ms = 10_000): Promise<T> {
    const parse = (l: string): Record<string, unknown> | undefined => {
      try {
        const value: unknown = JSON.parse(l);
        return typeof value === 'object' && value !== null ? (value as Record<string, unknown>) : undefined;
      } catch {
        return undefined;
      }
    };
    const line = await this.line(`a JSON line with "${key}"`, (l) => key in (parse(l) ?? {}), ms);
    return JSON.parse(line) as T;
  }

  exited(ms = 10_000): Promise<ExitResult> {
    return deadline(this.exit, ms, `exit of child ${this.pid}; stderr: ${this.stderr}`);
  }
}

/** Spawns a Node fixture from test/fixtures/native. */
export function nodeFixture(
  t: TestContext,
  name: string,
  args: readonly string[] = [],
  options: SpawnOptions = {},
): Child {
  return new Child(t, process.execPath, [fixture(name), ...args], options);
}

/** Resolves with the next message on a SEQPACKET fd (watchReadable + recvFds). */
export function receive(fd: number, ms = 10_000): Promise<{ data: Buffer; fds: number[] }> {
  let watcher: native.Watcher | undefined;
  const message = new Promise<{ data: Buffer; fds: number[] }>((resolve, reject) => {
    watcher = native.watchReadable(fd, (_readable, _hangup, error) => {
      if (error !== null) return reject(error);
      const got = native.recvFds(fd);
      if (got !== null) resolve(got);
    });
  });
  return deadline(message, ms, `a message on fd ${fd}`).finally(() => watcher?.stop());
}

/** Descriptors open in this process, by number. */
export function openFds(): number[] {
  return native.listFdsRaw().map((f) => f.fd);
}
