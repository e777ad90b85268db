// `nserve start APP [options] -- ARGS` (and config key args): the app sees process.argv = [node, APP,
// ...ARGS], never nserve's own options, in every mode and across hot and phased restarts.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, test } from 'node:test';
import { getJson } from '../helpers/load.js';
import { restart } from '../helpers/restart.js';
import { FIXTURES, killAll, runNserve, type ServerProcess, serveApp, tmpDir } from '../helpers/server.js';

after(killAll);

const APP = fs.realpathSync(path.join(FIXTURES, 'operator/argv.mjs'));
// Looks like nserve's options on purpose: they are the app's, after `--`.
const ARGS = ['start', '--port', '9', '-w', '3', '--', 'x y'];

/** process.argv as the app saw it, from `n` requests (new connections: any worker may answer). */
async function appArgv(port: number, n = 4): Promise<string[][]> {
  const seen: string[][] = [];
  for (let i = 0; i < n; i++) seen.push((await getJson(port)).body.argv as string[]);
  return seen;
}

async function assertArgv(srv: ServerProcess, port: number, expected: string[], when: string) {
  for (const argv of await appArgv(port)) assert.deepEqual(argv, expected, `${when}: ${srv.stderr}`);
}

test('single mode: the app sees [node, APP, ...ARGS] after --, and again after a hot restart', async (t) => {
  const { srv, port } = await serveApp(t, APP, { args: ['--log-level', 'info', '--', ...ARGS] });
  const expected = [process.execPath, APP, ...ARGS];
  await assertArgv(srv, port, expected, 'at boot');
  await restart(srv, 'hot');
  await assertArgv(srv, port, expected, 'after a hot restart');
});

test('cluster mode: every worker sees [node, APP, ...ARGS], after a phased and a hot restart', async (t) => {
  const { srv, port } = await serveApp(t, APP, { workers: 2, args: ['--', ...ARGS] });
  const expected = [process.execPath, APP, ...ARGS];
  await assertArgv(srv, port, expected, 'at boot');
  await restart(srv, 'phased');
  await assertArgv(srv, port, expected, 'after a phased restart');
  await restart(srv, 'hot');
  await assertArgv(srv, port, expected, 'after a hot restart');
});

test('without --, and with -- and nothing after it, the app sees [node, APP]', async (t) => {
  for (const args of [[], ['--']]) {
    const { srv, port } = await serveApp(t, APP, { workers: 1, args });
    await assertArgv(srv, port, [process.execPath, APP], `nserve start APP -w 1 ${args.join(' ')}`);
    await srv.kill();
  }
});

test('config key args: the app sees them in cluster mode and after a hot restart; -- alone overrides them', async (t) => {
  const dir = tmpDir(t);
  const config = path.join(dir, 'nserve.config.json');
  fs.writeFileSync(config, JSON.stringify({ args: ['from-file', '--hostname', '0.0.0.0'] }));
  const { srv, port } = await serveApp(t, APP, { workers: 2, args: ['-C', config] });
  const expected = [process.execPath, APP, 'from-file', '--hostname', '0.0.0.0'];
  await assertArgv(srv, port, expected, 'at boot');
  await restart(srv, 'hot');
  await assertArgv(srv, port, expected, 'after a hot restart');
  await srv.kill();
  // `--` with nothing after it: no arguments, whatever the file says.
  const { srv: bare, port: barePort } = await serveApp(t, APP, { args: ['-C', config, '--'] });
  await assertArgv(bare, barePort, [process.execPath, APP], 'with -C and a bare --');
});

test('portable mode (NSERVE_NO_ADDON=1): the app sees [node, APP, ...ARGS]', async (t) => {
  const { srv, port } = await serveApp(t, APP, { args: ['--', ...ARGS], env: { NSERVE_NO_ADDON: '1' } });
  await assertArgv(srv, port, [process.execPath, APP, ...ARGS], 'portable mode');
});

test('a config file whose args is not an array of strings: one line naming the key and what is valid', async (t) => {
  const dir = tmpDir(t);
  for (const bad of ['start', ['start', 3]]) {
    const config = path.join(dir, 'nserve.config.json');
    fs.writeFileSync(config, JSON.stringify({ args: bad }));
    const r = await runNserve(['start', APP, '-C', config, '--bind', 'tcp://127.0.0.1:0']);
    assert.equal(r.code, 2, r.stderr);
    assert.equal(
      r.stderr,
      `nserve: error: invalid config key args (in ${config}): ${JSON.stringify(bad)}: expected an array of strings, like ["start", "--hostname", "0.0.0.0"]\n`,
    );
  }
});

test('a second argument without --: one line pointing to -- ARGS, exit 2', async () => {
  const r = await runNserve(['start', APP, 'start']);
  assert.equal(r.code, 2, r.stderr);
  assert.equal(
    r.stderr,
    "nserve: error: too many arguments for 'start'. Expected 1 argument but got 2 (the app's own arguments go after --: nserve start APP [options] -- ARGS)\n",
  );
});
