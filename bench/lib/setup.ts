// The bench's own set-up, run before any suite: what only the benchmarks use is kept out of the root
// package (bench/package.json: PM2 and autocannon), so that `npm ci` and `npm test` stay lean; it is
// installed here with `npm ci --prefix bench`, again only when bench/package-lock.json has changed. Puma
// (a system of the restart suite) is Debian's package: checked here, with the command that installs it.
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import { ROOT } from './proc.js';

export const BENCH_DIR = path.join(ROOT, 'bench');
const STAMP = path.join(BENCH_DIR, 'node_modules', '.nserve-lock-sha256');

/** Install bench/package.json's dependencies unless bench/package-lock.json is what was installed last. */
export function installBenchDeps(): void {
  const want = createHash('sha256')
    .update(fs.readFileSync(path.join(BENCH_DIR, 'package-lock.json')))
    .digest('hex');
  if (fs.existsSync(STAMP) && fs.readFileSync(STAMP, 'utf8').trim() === want) return;
  console.error('bench: npm ci --prefix bench (PM2 and autocannon, for the benchmarks only)');
  const run = spawnSync('npm', ['ci', '--prefix', BENCH_DIR, '--no-audit', '--no-fund', '--loglevel=error'], {
    stdio: 'inherit',
  });
  if (run.status !== 0)
    throw new Error(
      `bench: npm ci --prefix bench failed (${run.error?.message ?? `exit ${run.status ?? run.signal}`}): PM2 and autocannon are needed`,
    );
  fs.writeFileSync(STAMP, `${want}\n`);
}

/** `require` from bench/ (bench/node_modules first), for the bench-only packages. */
export const benchRequire = createRequire(path.join(BENCH_DIR, 'package.json'));

/** A bench-only package's version, if installed. */
export function benchPackageVersion(name: string): string | undefined {
  try {
    return (benchRequire(`${name}/package.json`) as { version?: string }).version;
  } catch {
    return undefined;
  }
}

/** Puma's version (`puma --version`), or undefined when it is not installed. */
export function pumaVersion(): string | undefined {
  try {
    return execFileSync('puma', ['--version'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })
      .trim()
      .replace(/^puma version /, '');
  } catch {
    return undefined;
  }
}

/** Throws, saying how to install it, when Puma is missing. */
export function requirePuma(systems: readonly string[]): string {
  const version = pumaVersion();
  if (version === undefined)
    throw new Error(
      `bench: puma is not installed, and the restart suite compares with it (${systems.join(', ')}): install Debian's package with \`apt-get update && apt-get install -y puma\`, or choose other systems with --systems`,
    );
  return version;
}
