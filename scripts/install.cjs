#!/usr/bin/env node
// npm's install script for nserve (docs/install.md):
// 1. NSERVE_NO_ADDON=1, or not Linux (macOS, Windows): skip the addon; nserve serves in single mode only.
// 2. An addon that loads (a prebuild in prebuilds/<platform>-<arch>, found by node-gyp-build): done,
//    no compiler needed.
// 3. Otherwise build it from source with node-gyp (npm's own copy); where python3, make or a C++
//    compiler is missing, say so in two lines and fail, instead of a node-gyp stack.
// In a git checkout (developing nserve) the addon is always built from source, as is any install with
// --build-from-source, so that a change to native/ is never hidden by a prebuild or an older build.
'use strict';
const { spawnSync } = require('node:child_process');
const { existsSync } = require('node:fs');
const path = require('node:path');

const root = path.join(__dirname, '..');
const say = (line) => console.error(`nserve: ${line}`);

function firstLine(err) {
  return String(err instanceof Error ? err.message : err)
    .split('\n')[0]
    .trim();
}

/** Why no addon loads here, or undefined when one does. */
function whyNoAddon() {
  let file;
  try {
    file = require('node-gyp-build').path(root);
  } catch {
    return `no prebuilt addon for ${process.platform}-${process.arch}`;
  }
  try {
    require(file);
    return undefined;
  } catch (err) {
    return `the prebuilt addon ${path.relative(root, file)} does not load here (${firstLine(err)})`;
  }
}

function works(command, args = ['--version']) {
  const run = spawnSync(command, args, { stdio: 'ignore' });
  return run.status === 0;
}

function missingTools() {
  const missing = [];
  if (!works(process.env.npm_config_python || 'python3')) missing.push('python3');
  if (!works('make')) missing.push('make');
  const cxx = process.env.CXX;
  if (cxx ? !works(cxx) : !['c++', 'g++', 'clang++'].some((c) => works(c)))
    missing.push('a C++ compiler (g++)');
  return missing;
}

function nodeGyp() {
  // npm tells its scripts where its own node-gyp is; a developer's checkout also has node-gyp installed.
  if (process.env.npm_config_node_gyp && existsSync(process.env.npm_config_node_gyp)) {
    return process.env.npm_config_node_gyp;
  }
  try {
    return require.resolve('node-gyp/bin/node-gyp.js');
  } catch {
    return undefined;
  }
}

function main() {
  if (process.env.NSERVE_NO_ADDON === '1') {
    say('NSERVE_NO_ADDON=1: installed without the native addon (single mode only)');
    return 0;
  }
  if (process.platform !== 'linux') {
    say(`the native addon is Linux-only: skipped on ${process.platform} (single mode only)`);
    return 0;
  }
  const forced = process.env.npm_config_build_from_source === 'true';
  const checkout = existsSync(path.join(root, '.git'));
  const fromSource = forced || checkout;
  const reason = forced
    ? '--build-from-source was given'
    : checkout
      ? 'a git checkout builds the addon from source'
      : whyNoAddon();
  if (reason === undefined) return 0;

  const missing = missingTools();
  const gyp = nodeGyp();
  if (gyp === undefined) missing.push('node-gyp (comes with npm)');
  if (missing.length > 0) {
    say(`${reason}; building the addon from source needs ${missing.join(', ')}: not found.`);
    say(
      'Install them (Debian/Ubuntu: apt-get install python3 make g++; Alpine: apk add python3 make g++) and run ' +
        '`npm rebuild nserve`, or install with NSERVE_NO_ADDON=1 to serve in single mode only.',
    );
    return 1;
  }
  if (!fromSource) say(`${reason}: building it from source`);
  const run = spawnSync(process.execPath, [gyp, 'rebuild'], { cwd: root, stdio: 'inherit' });
  if (run.status !== 0) {
    say('building the native addon from source failed (output above); NSERVE_NO_ADDON=1 installs without it');
    return run.status ?? 1;
  }
  return 0;
}

process.exitCode = main();
