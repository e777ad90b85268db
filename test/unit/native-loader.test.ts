// src/native/index.ts without the addon: importing never throws; `available`, `unavailableReason` (one line)
// and ERR_NSERVE_NO_ADDON tell the rest of nserve, for every way the addon can be missing.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { loadAddon, NO_ADDON_ENV } from '../../src/native/index.js';
import { ROOT, tmpDir } from '../helpers/server.js';

const work = tmpDir({ after }, 'nserve-loader-');

/** A package root with binding.gyp and, optionally, files under prebuilds/. */
function fakePackage(name: string, prebuilds: Record<string, Buffer | string> = {}): string {
  const root = path.join(work, name);
  fs.mkdirSync(root);
  fs.writeFileSync(path.join(root, 'package.json'), JSON.stringify({ name: `fake-${name}` }));
  fs.writeFileSync(path.join(root, 'binding.gyp'), '{}');
  for (const [file, content] of Object.entries(prebuilds)) {
    fs.mkdirSync(path.dirname(path.join(root, 'prebuilds', file)), { recursive: true });
    fs.writeFileSync(path.join(root, 'prebuilds', file), content);
  }
  return root;
}

function assertOneLine(reason: string | undefined): string {
  assert.equal(typeof reason, 'string');
  assert.ok(!reason!.includes('\n'), `one line: ${JSON.stringify(reason)}`);
  return reason!;
}

test('the real package loads its addon', () => {
  const state = loadAddon(ROOT, {});
  assert.equal(state.reason, undefined);
  assert.equal(typeof state.addon?.socketpair, 'function');
});

test(`${NO_ADDON_ENV}=1 forces the no-addon path`, () => {
  const state = loadAddon(ROOT, { [NO_ADDON_ENV]: '1' });
  assert.equal(state.addon, undefined);
  assert.equal(assertOneLine(state.reason), 'NSERVE_NO_ADDON=1 is set');
});

test('not Linux: the addon is Linux-only', () => {
  for (const platform of ['darwin', 'win32'] as const) {
    const state = loadAddon(ROOT, {}, platform);
    assert.equal(state.addon, undefined);
    assert.match(assertOneLine(state.reason), new RegExp(`Linux-only \\(this is ${platform}-`));
  }
});

test('no prebuild for this system and no source build: says so and how to build one', () => {
  const root = fakePackage('none', { 'linux-riscv64/fake.glibc.node': 'x' });
  const state = loadAddon(root, {});
  assert.equal(state.addon, undefined);
  const reason = assertOneLine(state.reason);
  assert.match(reason, new RegExp(`no prebuilt addon for linux-${process.arch}`));
  assert.match(reason, /npm rebuild nserve/);
});

test('a prebuild that fails to load (dlopen): one line naming the file and the loader error', () => {
  const root = fakePackage('broken', { [`linux-${process.arch}/fake.glibc.node`]: 'not an ELF file' });
  const state = loadAddon(root, {});
  assert.equal(state.addon, undefined);
  const reason = assertOneLine(state.reason);
  assert.match(reason, /^the addon prebuilds\/linux-\w+\/fake\.glibc\.node failed to load: /);
  assert.match(reason, /invalid ELF header|file too short/);
});

test(`importing native.js with ${NO_ADDON_ENV}=1: no throw; calls and requireAddon give ERR_NSERVE_NO_ADDON`, () => {
  const url = pathToFileURL(path.join(ROOT, 'dist', 'src', 'native', 'index.js')).href;
  const script = `
    const native = await import(${JSON.stringify(url)});
    const errorOf = (fn) => { try { fn(); return null; } catch (e) { return { code: e.code, message: e.message }; } };
    console.log(JSON.stringify({
      available: native.available,
      reason: native.unavailableReason,
      call: errorOf(() => native.socketpair()),
      feature: errorOf(() => native.requireAddon('cluster mode')),
      notify: native.notify('READY=1', { NOTIFY_SOCKET: '/nonexistent' }),
    }));`;
  const out = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
    env: { ...process.env, [NO_ADDON_ENV]: '1' },
    encoding: 'utf8',
    timeout: 20_000,
  });
  assert.equal(out.status, 0, out.stderr);
  const result = JSON.parse(out.stdout) as {
    available: boolean;
    reason: string;
    call: { code: string; message: string };
    feature: { code: string; message: string };
    notify: boolean;
  };
  assert.equal(result.available, false);
  assert.equal(result.reason, 'NSERVE_NO_ADDON=1 is set');
  assert.deepEqual(result.call, {
    code: 'ERR_NSERVE_NO_ADDON',
    message: "native.socketpair needs nserve's native addon, which is unavailable: NSERVE_NO_ADDON=1 is set",
  });
  assert.deepEqual(result.feature, {
    code: 'ERR_NSERVE_NO_ADDON',
    message: "cluster mode needs nserve's native addon, which is unavailable: NSERVE_NO_ADDON=1 is set",
  });
  assert.equal(result.notify, false, 'best-effort sd_notify stays best-effort');
});

test(`the CLI starts without the addon (${NO_ADDON_ENV}=1): --version`, () => {
  const out = spawnSync(process.execPath, [path.join(ROOT, 'bin', 'nserve.js'), '--version'], {
    env: { ...process.env, [NO_ADDON_ENV]: '1' },
    encoding: 'utf8',
    timeout: 20_000,
  });
  assert.equal(out.status, 0, out.stderr);
  assert.match(out.stdout.trim(), /^\d+\.\d+\.\d+/);
});
