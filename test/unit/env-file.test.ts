import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { readEnvFile } from '../../src/config/env-file.js';

function envFile(text: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nserve-env-'));
  fs.writeFileSync(path.join(dir, '.env'), text);
  return dir;
}

test('dotenv names: a BOM, blanks around a name and `export` are read as dotenv tools do', () => {
  const dir = envFile('\uFEFFA=1\n  B=2\n\tC=3\nexport   D=4\nd.e-f=5\nQ="multi\nline"\n');
  try {
    assert.deepEqual(readEnvFile('.env', dir).vars, {
      A: '1',
      B: '2',
      C: '3',
      D: '4',
      'd.e-f': '5',
      Q: 'multi\nline',
    });
  } finally {
    fs.rmSync(dir, { recursive: true });
  }
});

test('a dotenv line that is not NAME=value is refused, naming what was read', () => {
  const dir = envFile('FOO\n=bar\nGOOD=1\n');
  try {
    assert.throws(
      () => readEnvFile('.env', dir),
      /"FOO" is not a variable name \(each line must be NAME=value\)/,
    );
  } finally {
    fs.rmSync(dir, { recursive: true });
  }
});
