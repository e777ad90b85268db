// The settings table (src/config/settings*.ts) is the one place a setting is spelled: the README's
// options table, `nserve start --help`, the config-file keys and the types must agree with it.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { readConfigFile } from '../../src/config/file.js';
import { SETTINGS, type Setting, type SettingKey } from '../../src/config/settings.js';
import { renderOptionsTable, withOptionsTable } from '../../src/config/settings-doc.js';
import type { CliOptions, Config, HookName, UserConfig } from '../../src/config/types.js';
import { ROOT } from '../helpers/server.js';

type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
const table = SETTINGS as readonly Setting[];

test('the README options table is generated from the settings table (npm run docs:options)', () => {
  const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
  assert.equal(readme, withOptionsTable(readme), 'README.md is stale: run npm run docs:options');
  assert.ok(readme.includes(renderOptionsTable()));
  // Every setting a user can set (a flag, or a config key other than app) has a row.
  for (const s of table) if (s.key !== 'app') assert.ok(s.doc !== undefined, `no README row for ${s.key}`);
});

test('nserve start --help lists exactly the flags of the settings table', () => {
  const help = execFileSync(process.execPath, [path.join(ROOT, 'bin/nserve.js'), 'start', '--help'], {
    encoding: 'utf8',
    timeout: 20_000,
    env: { ...process.env, COLUMNS: '100' },
  });
  // Option lines start with two spaces and a flag; wrapped descriptions are indented further.
  const listed = help
    .split('\n')
    .map((line) => /^ {2}((?:-\w, )?--[\w-]+(?: <\w+>)?)/.exec(line)?.[1])
    .filter((f) => f !== undefined && f !== '-h, --help');
  const flags = table.flatMap((s) => (s.flags === undefined ? [] : [s.flags]));
  assert.deepEqual(listed, flags);
});

test('a config file may set exactly the table keys and the hooks; the message lists them', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nserve-settings-'));
  const file = path.join(dir, 'nserve.config.json');
  fs.writeFileSync(file, JSON.stringify({ nope: 1 }));
  const valid = (await readConfigFile(file).catch((err: Error) => err.message)) as string;
  const listed = /\(valid: (.*)\)$/.exec(valid)?.[1]?.split(', ');
  const keys = table.filter((s) => s.cliOnly !== true).map((s) => s.key);
  assert.deepEqual(listed, [
    ...keys,
    'onRestart',
    'onWorkerBoot',
    'onWorkerShutdown',
    'beforeSpawn',
    'onBooted',
  ]);
  fs.rmSync(dir, { recursive: true, force: true });
});

test('the types agree with the table (checked by the compiler; these lines fail to build otherwise)', () => {
  // UserConfig (written out for its doc comments) has the table's config keys and the hooks, no more.
  const userKeys: Equal<keyof UserConfig, SettingKey | HookName> = true;
  // Every Config field is a setting's, or one of the few derived from several.
  type TableField = NonNullable<
    (typeof SETTINGS)[number] extends infer S ? (S extends { field: infer F } ? F : never) : never
  >;
  const fields: Equal<
    Exclude<keyof Config, TableField>,
    'metrics' | 'configFile' | 'configSource' | 'sources' | 'hooks'
  > = true;
  // CliOptions is read off the flags: values are strings, repeatable ones arrays, bare flags booleans.
  const cli: [
    Equal<CliOptions['bind'], string[] | undefined>,
    Equal<CliOptions['tagOutput'], boolean | undefined>,
    Equal<CliOptions['dotenv'], string | undefined>,
    Equal<CliOptions['config'], string | undefined>,
    Equal<CliOptions['args'], string[] | undefined>,
  ] = [true, true, true, true, true];
  assert.ok(userKeys && fields && cli.every(Boolean));
});

test('the package entry does not export the internal Config type (a config file is a UserConfig)', () => {
  const entry = fs.readFileSync(path.join(ROOT, 'dist/src/index.d.ts'), 'utf8');
  assert.doesNotMatch(entry, /\bConfig\b(?!File)/);
  assert.match(entry, /\bUserConfig\b/);
});
