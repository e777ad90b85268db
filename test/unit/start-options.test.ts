// `nserve start` command lines are read without commander (cli/start-options.ts) when they can be read
// exactly as commander reads them; anything else is left to commander.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Command } from 'commander';
import { buildProgram } from '../../src/cli/program.js';
import { parseStartArgs, splitAppArgs } from '../../src/cli/start-options.js';

/** What commander's `start` action receives for `nserve start ...args` (split at `--` as main.ts does). */
function viaCommander(all: string[]): { app: string | undefined; opts: Record<string, unknown> } {
  const { own: args, app: appArgs } = splitAppArgs(all);
  const program = buildProgram({ appArgs });
  const startCmd = program.commands.find((c) => c.name() === 'start') as Command;
  let got: { app: string | undefined; opts: Record<string, unknown> } | undefined;
  startCmd.action((app: string | undefined, opts: Record<string, unknown>) => {
    got = { app, opts: { ...opts } };
  });
  program.parse(['node', 'nserve', 'start', ...args]);
  if (got === undefined) throw new Error('no action');
  return got;
}

const READ: string[][] = [
  [],
  ['app.mjs'],
  ['app.mjs', '-w', '2', '--bind', 'tcp://127.0.0.1:3000', '--bind=unix:///tmp/s.sock?mode=0660'],
  ['-w2', '-p3000', '--directory', '/srv/app', 'server.js'],
  ['--tag-output', '--access-log', '--boot-check', 'a.js', '--log-level', 'debug', '--log-format=logfmt'],
  ['--leak-policy', 'warn', '-e', 'production', '-C', 'nserve.config.mjs', '--ready-probe', '/ready'],
  [
    '--control-url',
    'auto',
    '--state',
    '/run/s.json',
    '--metrics-url',
    'tcp://127.0.0.1:9100',
    '--dotenv',
    '.env',
  ],
  ['--shutdown-timeout', '5', '--worker-max-memory', '512MB', '--bind='],
  ['--workers', '1', '--workers', '3'],
  // After `--`: the app's arguments, whatever they look like.
  ['app.mjs', '-w', '2', '--', 'start', '--port', '9', '--', '-x'],
  ['app.mjs', '--'],
  ['--', 'app.mjs'],
];

for (const args of READ) {
  test(`read like commander: start ${args.join(' ')}`, () => {
    const lean = parseStartArgs(args);
    assert.ok(lean !== undefined, 'read without commander');
    assert.deepEqual({ app: lean.app, opts: { ...lean.opts } }, viaCommander(args));
  });
}

const LEFT_TO_COMMANDER: string[][] = [
  ['--help'],
  ['-h'],
  ['app.mjs', 'extra.mjs'],
  ['--no-such-option'],
  ['-x'],
  ['--log-level', 'loud'],
  ['--log-format=xml'],
  ['-w'],
  ['--port', '-1'],
  ['--tag-output=yes'],
  ['--port', '--', '3000'],
];

for (const args of LEFT_TO_COMMANDER) {
  test(`left to commander: start ${args.join(' ')}`, () => {
    assert.equal(parseStartArgs(args), undefined);
  });
}

test("-- ends nserve's options: what follows is the app's (no --: undefined; a bare --: none)", () => {
  assert.deepEqual(parseStartArgs(['app.mjs', '-w', '2', '--', 'start', '-w', '3'])?.opts, {
    workers: '2',
    args: ['start', '-w', '3'],
  });
  assert.deepEqual(parseStartArgs(['app.mjs', '--'])?.opts, { args: [] });
  assert.equal(parseStartArgs(['app.mjs'])?.opts.args, undefined);
  assert.deepEqual(splitAppArgs(['a', '--', '--']), { own: ['a'], app: ['--'] });
});
