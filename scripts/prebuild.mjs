#!/usr/bin/env node
// Builds the prebuilt addons that the package ships: prebuilds/linux-x64 and prebuilds/linux-arm64
// (glibc), with prebuildify (N-API: one binary per platform and architecture serves every Node
// version). The architecture that is not the host's is cross-compiled with Debian's toolchain
// (g++-aarch64-linux-gnu or g++-x86-64-linux-gnu). Each build happens in a temporary copy of
// binding.gyp and native/, so that build/Release (the developer's own build, which node-gyp-build
// loads first) is never replaced by a binary of another architecture.
//
// Every binary is checked before it is kept: the ELF machine, and the newest glibc symbol version
// it needs (objdump -T), which must not exceed GLIBC_FLOOR.
//
//   node scripts/prebuild.mjs [--arch x64,arm64]
import { spawnSync } from 'node:child_process';
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
} from 'node:fs';
import { arch as hostArch, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const GLIBC_FLOOR = '2.28';
/** Built beside the addon from binding.gyp's second target; shipped beside it. */
const PRELOAD = 'nserve_signals.so';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

// GNU triple and ELF e_machine of each target.
const TARGETS = {
  x64: { triple: 'x86_64-linux-gnu', debian: 'g++-x86-64-linux-gnu', machine: 0x3e },
  arm64: { triple: 'aarch64-linux-gnu', debian: 'g++-aarch64-linux-gnu', machine: 0xb7 },
};

function fail(message) {
  console.error(`prebuild: ${message}`);
  process.exit(1);
}

function have(command) {
  return spawnSync(command, ['--version'], { stdio: 'ignore' }).status === 0;
}

/** The compilers for `arch`: the host's own for the host architecture, the cross toolchain otherwise. */
function toolchain(arch) {
  const target = TARGETS[arch];
  if (arch === hostArch()) return { env: {}, strip: 'strip', objdump: 'objdump' };
  const gxx = `${target.triple}-g++`;
  if (!have(gxx)) fail(`${gxx} not found: install Debian's ${target.debian} to build the ${arch} prebuild`);
  return {
    env: {
      CC: `${target.triple}-gcc`,
      CXX: gxx,
      LINK: gxx,
      AR: `${target.triple}-ar`,
    },
    strip: `${target.triple}-strip`,
    objdump: have(`${target.triple}-objdump`) ? `${target.triple}-objdump` : 'objdump',
  };
}

/** The newest GLIBC_x.y version a shared object needs, from objdump -T. */
export function newestGlibc(file, objdump = 'objdump') {
  const out = spawnSync(objdump, ['-T', file], { encoding: 'utf8' });
  if (out.status !== 0) fail(`${objdump} -T ${file} failed: ${out.stderr.trim()}`);
  const versions = [...out.stdout.matchAll(/\(GLIBC_(\d+)\.(\d+)(?:\.\d+)?\)/g)].map((m) => [
    Number(m[1]),
    Number(m[2]),
  ]);
  versions.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  const last = versions.at(-1);
  return last ? `${last[0]}.${last[1]}` : '0.0';
}

function versionAbove(a, b) {
  const [a1, a2] = a.split('.').map(Number);
  const [b1, b2] = b.split('.').map(Number);
  return a1 > b1 || (a1 === b1 && a2 > b2);
}

function build(arch) {
  const tools = toolchain(arch);
  const work = mkdtempSync(join(tmpdir(), `nserve-prebuild-${arch}-`));
  try {
    cpSync(join(root, 'binding.gyp'), join(work, 'binding.gyp'));
    cpSync(join(root, 'native'), join(work, 'native'), { recursive: true });
    cpSync(join(root, 'package.json'), join(work, 'package.json'));
    // binding.gyp asks node for node-addon-api's include directory.
    symlinkSync(join(root, 'node_modules'), join(work, 'node_modules'), 'dir');
    const env = { ...process.env, ...tools.env };
    // node-gyp must use the installed Node's headers: there is no network to download them.
    if (!env.npm_config_nodedir && existsSync('/usr/include/node/node_api.h'))
      env.npm_config_nodedir = '/usr';
    const prebuildify = join(root, 'node_modules', 'prebuildify', 'bin.js');
    const args = [prebuildify, '--napi', '--strip', '--tag-libc', `--target=${process.versions.node}`];
    args.push(`--arch=${arch}`, `--strip-bin=${tools.strip}`, `--cwd=${work}`);
    // Its output goes to stderr: stdout belongs to `npm pack --json`, which runs this as prepack.
    const run = spawnSync(process.execPath, args, { cwd: work, env, stdio: ['ignore', 2, 2] });
    if (run.status !== 0) fail(`prebuildify for linux-${arch} failed (status ${run.status})`);

    const dir = join(work, 'prebuilds', `linux-${arch}`);
    const files = readdirSync(dir).filter((f) => f.endsWith('.node'));
    if (files.length !== 1) fail(`expected one .node file in ${dir}, found ${files.join(', ') || 'none'}`);
    const file = join(dir, files[0]);
    const machine = readFileSync(file).readUInt16LE(18);
    if (machine !== TARGETS[arch].machine)
      fail(`${file} has ELF machine 0x${machine.toString(16)}, not ${arch}`);
    const glibc = newestGlibc(file, tools.objdump);
    if (versionAbove(glibc, GLIBC_FLOOR))
      fail(`${file} needs GLIBC_${glibc}, above the floor ${GLIBC_FLOOR}`);

    // The object a hot restart preloads into its new image (native/early_signals.cc), built by the same
    // node-gyp run; it lives beside the addon, where src/native/addon.ts looks for it.
    const preload = join(work, 'build', 'Release', PRELOAD);
    if (!existsSync(preload)) fail(`${preload} was not built`);
    if (readFileSync(preload).readUInt16LE(18) !== TARGETS[arch].machine)
      fail(`${preload} is not an ELF object for ${arch}`);
    const preloadGlibc = newestGlibc(preload, tools.objdump);
    if (versionAbove(preloadGlibc, GLIBC_FLOOR))
      fail(`${preload} needs GLIBC_${preloadGlibc}, above the floor ${GLIBC_FLOOR}`);
    spawnSync(tools.strip, [preload], { stdio: 'inherit' });

    const out = join(root, 'prebuilds', `linux-${arch}`);
    rmSync(out, { recursive: true, force: true });
    mkdirSync(out, { recursive: true });
    cpSync(file, join(out, files[0]));
    cpSync(preload, join(out, PRELOAD));
    console.error(`prebuild: prebuilds/linux-${arch}/${files[0]} and ${PRELOAD} (needs GLIBC_${glibc})`);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const i = process.argv.indexOf('--arch');
  const arches = i === -1 ? Object.keys(TARGETS) : (process.argv[i + 1] ?? '').split(',');
  for (const arch of arches) {
    if (!(arch in TARGETS)) fail(`unknown architecture ${arch}: one of ${Object.keys(TARGETS).join(', ')}`);
    build(arch);
  }
}
