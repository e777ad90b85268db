#!/usr/bin/env node
// `node --test` over test directories, the same on every Node line: Node 20 expands a directory argument,
// Node 22 and later take arguments as glob patterns, where a directory matches nothing ("Cannot find
// module"). So the *.test.js files are listed here, in a stable order.
//   node scripts/run-tests.mjs [--node-test-flags...] DIR_OR_FILE...
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

const flags = process.argv.slice(2).filter((a) => a.startsWith('--'));
const paths = process.argv.slice(2).filter((a) => !a.startsWith('--'));
if (paths.length === 0) {
  console.error('run-tests: name the test directories or files, e.g. dist/test/unit');
  process.exit(2);
}

function testFiles(path) {
  let st;
  try {
    st = statSync(path);
  } catch {
    console.error(`run-tests: ${path} does not exist (run npm run build first?)`);
    process.exit(2);
  }
  if (!st.isDirectory()) return [path];
  return readdirSync(path, { withFileTypes: true })
    .sort((a, b) => a.name.localeCompare(b.name))
    .flatMap((e) =>
      e.isDirectory()
        ? testFiles(join(path, e.name))
        : e.name.endsWith('.test.js')
          ? [join(path, e.name)]
          : [],
    );
}

const files = paths.flatMap(testFiles);
const run = spawnSync(process.execPath, ['--test', ...flags, ...files], { stdio: 'inherit' });
process.exit(run.status ?? 1);
