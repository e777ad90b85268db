// scripts/check-structure.mjs (run by `npm run lint`): the house rules of src/ on small trees of their own.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { ROOT } from '../helpers/server.js';

const SCRIPT = path.join(ROOT, 'scripts/check-structure.mjs');

/** Runs the check over a package whose src/ holds `files` (path → text). */
function check(files: Record<string, string>): { status: number | null; out: string } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nserve-structure-'));
  try {
    for (const [name, text] of Object.entries(files)) {
      fs.mkdirSync(path.dirname(path.join(dir, 'src', name)), { recursive: true });
      fs.writeFileSync(path.join(dir, 'src', name), text);
    }
    const r = spawnSync(process.execPath, [SCRIPT, dir], { encoding: 'utf8', timeout: 30_000 });
    return { status: r.status, out: `${r.stdout}${r.stderr}` };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

test('this package passes its own structure check', () => {
  const r = spawnSync(process.execPath, [SCRIPT], { encoding: 'utf8', timeout: 30_000 });
  assert.equal(r.status, 0, r.stderr);
});

test('a value-import cycle fails and is named; `import type` and type-only names do not count', () => {
  const cycle = check({
    'index.ts': "export { a } from './room/a.js';\n",
    'room/a.ts': "import { b } from './b.js';\nexport const a = () => b;\n",
    'room/b.ts': "import { a } from './a.js';\nexport const b = () => a;\n",
  });
  assert.equal(cycle.status, 1);
  assert.match(cycle.out, /value-import cycle: room\/a\.ts → room\/b\.ts → room\/a\.ts/);

  const types = check({
    'index.ts': "export { a } from './room/a.js';\n",
    'room/a.ts': "import { b } from './b.js';\nexport type A = number;\nexport const a = () => b;\n",
    'room/b.ts':
      "import type { A } from './a.js';\nimport { type A as B } from './a.js';\nexport const b = (x: A, y: B) => x + y;\n",
  });
  assert.equal(types.status, 0, types.out);
});

test('loose modules, a module beside its folder, a name twice and a long module each fail', () => {
  const r = check({
    'index.ts': '',
    'a.ts': '',
    'b.ts': '',
    'c.ts': '',
    'config.ts': '',
    'config/load.ts': '',
    // 400 lines and a final newline: 401 as the project's gate counts them (the empty piece after it too).
    'os/load.ts': `${'//\n'.repeat(400)}`,
  });
  assert.equal(r.status, 1);
  assert.match(r.out, /5 modules loose in src\/ \(at most 4\)/);
  assert.match(r.out, /src\/config\.ts sits beside the folder src\/config\/: make it src\/config\/index\.ts/);
  assert.match(r.out, /2 modules named load: src\/config\/load\.ts, src\/os\/load\.ts/);
  assert.match(r.out, /src\/os\/load\.ts has 401 lines \(at most 400\)/);
});
