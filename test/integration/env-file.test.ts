// --dotenv FILE (config envFile): read again from the re-resolved release at every restart; changed keys logged, never values.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, test } from 'node:test';
import { getJson } from '../helpers/load.js';
import { restart } from '../helpers/restart.js';
import { isEvent, killAll, runNserve, serveApp, tmpDir } from '../helpers/server.js';

after(killAll);

const APP = `export default (req, res) => {
  res.setHeader('content-type', 'application/json');
  res.end(JSON.stringify({ greeting: process.env.GREETING ?? null, extra: process.env.EXTRA ?? null, pid: process.pid }));
};
`;

/** releases/<v>/{app.mjs,.env} and a `current` symlink. */
function release(root: string, version: string, env: string): void {
  const dir = path.join(root, 'releases', version);
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'app.mjs'), APP);
  fs.writeFileSync(path.join(dir, '.env'), env);
}
function point(root: string, version: string): void {
  const tmp = path.join(root, 'current.tmp');
  fs.rmSync(tmp, { force: true });
  fs.symlinkSync(path.join(root, 'releases', version), tmp);
  fs.renameSync(tmp, path.join(root, 'current'));
}

for (const workers of [0, 2]) {
  const mode = workers === 0 ? 'single' : 'cluster';
  test(`${mode}: an env file change reaches the app after a hot restart${workers > 0 ? ' and a phased restart' : ''}`, {
    timeout: 90_000,
  }, async (t) => {
    const root = tmpDir(t);
    release(root, 'v1', 'GREETING=hello\nEXTRA="secret one"\n');
    release(root, 'v2', '# deploy 2\nGREETING=bonjour\n');
    release(root, 'v3', 'GREETING=hola\nEXTRA=secret-three\n');
    point(root, 'v1');
    const { srv, port } = await serveApp(t, 'app.mjs', {
      directory: path.join(root, 'current'),
      workers,
      args: ['--dotenv', '.env'],
    });
    assert.deepEqual((await getJson(port, '/')).body.greeting, 'hello');
    point(root, 'v2');
    const hot = await restart(srv, 'hot');
    const body = (await getJson(port, '/')).body;
    assert.equal(body.greeting, 'bonjour');
    assert.equal(body.extra, null, 'a key removed from the env file is removed from the environment');
    const said = hot.lines.find((l) => isEvent(l, 'env-file.applied'));
    assert.ok(said !== undefined, `no env file line:\n${hot.lines.map((l) => l.msg).join('\n')}`);
    assert.match(String(said.envFile), /releases\/v2\/\.env$/);
    assert.deepEqual([said.changed, said.removed], [['GREETING'], ['EXTRA']]);
    if (workers > 0) {
      point(root, 'v3');
      const phased = await restart(srv, 'phased');
      for (let i = 0; i < 4; i++) assert.equal((await getJson(port, '/')).body.greeting, 'hola');
      assert.ok(
        phased.lines.some(
          (l) =>
            isEvent(l, 'env-file.applied') &&
            /releases\/v3\/\.env$/.test(String(l.envFile)) &&
            JSON.stringify([l.changed, l.removed]) === '[["EXTRA","GREETING"],[]]',
        ),
        phased.lines.map((l) => JSON.stringify(l)).join('\n'),
      );
    }
    const everything = srv.lines.map((l) => JSON.stringify(l)).join('\n') + srv.stderr;
    for (const value of ['hello', 'bonjour', 'hola', 'secret'])
      assert.ok(!everything.includes(value), `value ${value} was logged`);
  });
}

test('a missing env file: one line, exit 2', async (t) => {
  const dir = tmpDir(t);
  fs.writeFileSync(path.join(dir, 'app.mjs'), APP);
  const r = await runNserve([
    'start',
    'app.mjs',
    '--directory',
    dir,
    '--dotenv',
    'missing.env',
    '--bind',
    'tcp://127.0.0.1:0',
  ]);
  assert.equal(r.code, 2);
  assert.match(
    r.stderr,
    /^nserve: error: cannot read the env file .*missing\.env \(--dotenv \/ envFile\): ENOENT.*\n$/,
  );
});
