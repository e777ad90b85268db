// Preloaded (`--import`) into every node process the tests start while c8 collects coverage
// (NODE_V8_COVERAGE is set; see startCommand in server.ts). A process writes its V8 coverage when it
// exits, but a hot restart replaces the image with execve(2) and nothing is written: the restart code
// that ran up to the exec would count as never run. This writes the coverage just before each exec.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { takeCoverage } from 'node:v8';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const ADDON = path.join(ROOT, 'build/Release/nserve.node');

// Only in this repository's own CLI: a packed copy installed elsewhere (the package test) loads its own addon.
const OWN_CLI = process.argv[1] === path.join(ROOT, 'bin/nserve.js');

if (process.env.NODE_V8_COVERAGE !== undefined && OWN_CLI && existsSync(ADDON)) {
  // The same module object src/native/addon.ts gets: require caches a .node file by its path.
  const addon = createRequire(import.meta.url)(ADDON) as { execve: (...args: unknown[]) => never };
  const execve = addon.execve;
  addon.execve = (...args: unknown[]): never => {
    takeCoverage();
    return execve(...args);
  };
}
