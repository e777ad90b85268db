// What ran where: machine, versions, the exact command; and where results go.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ROOT } from './proc.js';
import { benchPackageVersion, pumaVersion } from './setup.js';

function tryExec(file: string, args: string[]): string | undefined {
  try {
    return execFileSync(file, args, {
      encoding: 'utf8',
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    }).trim();
  } catch (err) {
    // wrk -v prints its version and exits 1
    const out = (err as { stdout?: string; stderr?: string }).stdout ?? '';
    return out.trim() || undefined;
  }
}

/**
 * The machine's load, said in every suite's output: the figures of a run on a shared machine are read
 * against it (load average over 1, 5 and 15 minutes, on this many CPUs).
 */
export function describeLoad(when: string): string {
  const [one = 0, five = 0, fifteen = 0] = os.loadavg();
  return `machine load ${when}: ${one.toFixed(2)} ${five.toFixed(2)} ${fifteen.toFixed(2)} (1/5/15 min) on ${os.availableParallelism()} CPUs`;
}

export interface Machine {
  date: string;
  hostname: string;
  nproc: number;
  cpuModel: string;
  memTotalMB: number;
  kernel: string;
  /** /proc/sys/kernel/sched_autogroup_enabled: 1 = the CPU is shared per session under contention. */
  schedAutogroup?: number;
  node: string;
  loadavgAtStart: number[];
  loadavgAtEnd?: number[];
  wrk?: string;
  pm2?: string;
  autocannon?: string;
  puma?: string;
  nserveCommit?: string;
  nserveDirty?: boolean;
  note: string;
}

export function machine(): Machine {
  const commit = tryExec('git', ['rev-parse', '--short', 'HEAD']);
  const dirty = tryExec('git', ['status', '--porcelain', '--', 'src', 'native', 'bin']);
  const wrk = wrkPath() ? tryExec(wrkPath()!, ['-v'])?.split('\n')[0] : undefined;
  return {
    date: new Date().toISOString(),
    hostname: os.hostname(),
    nproc: os.availableParallelism(),
    cpuModel: os.cpus()[0]?.model ?? 'unknown',
    memTotalMB: Math.round(os.totalmem() / 1048576),
    kernel: `${os.type()} ${os.release()}`,
    ...autogroup(),
    node: process.version,
    loadavgAtStart: os.loadavg().map((x) => Number(x.toFixed(2))),
    ...(wrk ? { wrk } : {}),
    ...(benchPackageVersion('pm2') ? { pm2: benchPackageVersion('pm2')! } : {}),
    ...(benchPackageVersion('autocannon') ? { autocannon: benchPackageVersion('autocannon')! } : {}),
    ...(pumaVersion() ? { puma: pumaVersion()! } : {}),
    ...(commit ? { nserveCommit: commit, nserveDirty: (dirty ?? '') !== '' } : {}),
    note: 'load generator and servers share the same cores; other jobs may have been running (see loadavg): read ratios, not absolute figures',
  };
}

let wrkCache: string | null | undefined;
/** Absolute path of wrk, or undefined when it is not installed. */
export function wrkPath(): string | undefined {
  if (wrkCache === undefined) {
    wrkCache = null;
    for (const dir of (process.env.PATH ?? '/usr/bin').split(':')) {
      const p = path.join(dir, 'wrk');
      try {
        fs.accessSync(p, fs.constants.X_OK);
        wrkCache = p;
        break;
      } catch {
        // next
      }
    }
  }
  return wrkCache ?? undefined;
}

/** The command as typed (best effort), for the result file. */
export function commandLine(): string {
  const quote = (a: string): string => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`);
  const args = process.argv.slice(2).map(quote).join(' ');
  if (process.env.npm_lifecycle_event === 'bench') return `npm run bench -- ${args}`;
  return `node ${path.relative(ROOT, process.argv[1] ?? '')} ${args}`;
}

export function defaultOut(suite: string): string {
  const stamp = new Date()
    .toISOString()
    .replace(/\.\d+Z$/, '')
    .replace(/:/g, '-');
  return path.join(ROOT, 'bench', 'results', `${suite}-${stamp}.json`);
}

export function writeResult(out: string, data: unknown): void {
  fs.mkdirSync(path.dirname(out), { recursive: true });
  fs.writeFileSync(out, `${JSON.stringify(data, null, 1)}\n`);
}

export function writeText(file: string, text: string): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, text);
}

/**
 * Result files may be committed, and `npm run lint` (biome check .) checks them: format them the way the
 * project's biome wants (best effort; the file is valid JSON either way).
 */
export function formatForRepo(files: string[]): void {
  const biome = path.join(ROOT, 'node_modules', '.bin', 'biome');
  if (!fs.existsSync(biome)) return;
  try {
    execFileSync(biome, ['format', '--write', ...files], { cwd: ROOT, stdio: 'ignore' });
  } catch {
    // outside the project's includes, or biome missing: leave as is
  }
}

function autogroup(): { schedAutogroup?: number } {
  try {
    return {
      schedAutogroup: Number(fs.readFileSync('/proc/sys/kernel/sched_autogroup_enabled', 'utf8').trim()),
    };
  } catch {
    return {};
  }
}
