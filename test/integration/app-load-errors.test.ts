// An app that fails at import: the first frame inside the app (file:line:column) and a code frame,
// said once, exit 2, in single and cluster mode alike.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, type TestContext, test } from 'node:test';
import { killAll, runNserve, tmpDir } from '../helpers/server.js';

after(killAll);

function writeApp(dir: string): void {
  fs.writeFileSync(
    path.join(dir, 'typeerr.mjs'),
    "import './lib/util.mjs';\nconst o = undefined;\nexport default o.foo;\n",
  );
  fs.mkdirSync(path.join(dir, 'lib'));
  fs.writeFileSync(path.join(dir, 'lib/util.mjs'), 'export const ok = 1;\n');
  fs.writeFileSync(path.join(dir, 'syntax.mjs'), "import './lib/broken.mjs';\nexport default () => {};\n");
  fs.writeFileSync(path.join(dir, 'lib/broken.mjs'), 'const a = 1;\nconst b = ;\nexport default a;\n');
}

/** `nserve start APP` over the apps above, which must exit 2; its stderr lines. */
async function failToStart(t: TestContext, app: string, workers: number) {
  const dir = tmpDir(t);
  writeApp(dir);
  const r = await runNserve([
    'start',
    app,
    '--directory',
    dir,
    '--bind',
    'tcp://127.0.0.1:0',
    '-w',
    String(workers),
  ]);
  assert.equal(r.code, 2, r.stderr);
  return { r, lines: r.stderr.trimEnd().split('\n') };
}

for (const workers of [0, 2]) {
  const mode = workers === 0 ? 'single' : 'cluster';
  test(`${mode}: a TypeError at import names typeerr.mjs:3:18 with a code frame, once, exit 2`, async (t) => {
    const { r, lines } = await failToStart(t, 'typeerr.mjs', workers);
    assert.match(
      lines[0]!,
      /^nserve: error: app .*typeerr\.mjs failed to load: TypeError: Cannot read properties of undefined \(reading 'foo'\) \(at typeerr\.mjs:3:18\)$/,
    );
    assert.deepEqual(lines.slice(1), [
      "  1 | import './lib/util.mjs';",
      '  2 | const o = undefined;',
      '> 3 | export default o.foo;',
      '    |                  ^',
    ]);
    const everything = [r.stderr, ...r.stdout.map((l) => JSON.stringify(l))].join('\n');
    assert.equal(everything.split('Cannot read properties').length - 1, 1, `said once:\n${everything}`);
  });

  test(`${mode}: an ES module syntax error in an imported file is located (lib/broken.mjs:2:11)`, async (t) => {
    const { r, lines } = await failToStart(t, 'syntax.mjs', workers);
    assert.match(
      lines[0]!,
      /failed to load: SyntaxError: Unexpected token ';' \(at lib\/broken\.mjs:2:11\)$/,
    );
    assert.ok(lines.includes('> 2 | const b = ;'), r.stderr);
  });
}
