#!/usr/bin/env node
// Install the frameworks of the matrix tests (test/tools/frameworks-matrix.test.ts): Next.js, React and
// NestJS, pinned in test/frameworks-matrix/package-lock.json. They are not devDependencies of nserve, so
// that `npm ci` on a fresh machine stays lean (next alone is some 300 MB); `npm run test:tools` runs this
// first. `npm ci` runs again only when the lock file changed since the last install.
//   node scripts/frameworks-matrix.mjs
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const dir = join(dirname(fileURLToPath(import.meta.url)), '..', 'test', 'frameworks-matrix');
const lock = join(dir, 'package-lock.json');
const stamp = join(dir, 'node_modules', '.nserve-lock-sha256');

const want = createHash('sha256').update(readFileSync(lock)).digest('hex');
if (existsSync(stamp) && readFileSync(stamp, 'utf8').trim() === want) {
  console.error('frameworks-matrix: installed (test/frameworks-matrix/package-lock.json unchanged)');
  process.exit(0);
}
console.error('frameworks-matrix: npm ci --prefix test/frameworks-matrix');
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
const run = spawnSync(npm, ['ci', '--prefix', dir, '--no-audit', '--no-fund', '--loglevel=error'], {
  stdio: 'inherit',
  env: { ...process.env, NEXT_TELEMETRY_DISABLED: '1' },
});
if (run.status !== 0) {
  console.error(
    `frameworks-matrix: npm ci failed (${run.error?.message ?? `exit ${run.status ?? run.signal}`}): the matrix tests need it`,
  );
  process.exit(run.status || 1);
}
writeFileSync(stamp, `${want}\n`);
