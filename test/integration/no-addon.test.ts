// Without the native addon (macOS, Windows, or forced with NSERVE_NO_ADDON=1 as here): single mode
// serves with Node's own listener; what needs the addon says so in one line.
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { getJson } from '../helpers/load.js';
import { killAll, runNserve, startNserve } from '../helpers/server.js';

after(killAll);

const env = { NSERVE_NO_ADDON: '1' };

test('without the addon, single mode serves; a hot restart is refused in one line; a stop exits 0', {
  timeout: 30_000,
}, async (t) => {
  const srv = startNserve(['start', 'examples/hello.mjs', '--bind', 'tcp://127.0.0.1:0'], { env });
  t.after(() => srv.kill());
  const port = await srv.port();
  const booted = await srv.waitForMsg('nserve booted');
  assert.equal(booted.addon, false);
  assert.equal((await getJson(port)).status, 200);
  const mark = srv.lines.length;
  srv.signal('SIGUSR2');
  const refused = await srv.waitForMsg(/^SIGUSR2 ignored/, 5000, mark);
  assert.match(
    String(refused.msg),
    /hot restart needs nserve's native addon, which is unavailable: NSERVE_NO_ADDON=1/,
  );
  assert.equal((await getJson(port)).status, 200, 'still serving');
  srv.signal('SIGTERM');
  assert.deepEqual(await srv.waitExit(10000), { code: 0, signal: null });
});

test('without the addon, cluster mode is refused: one line, exit 2', { timeout: 30_000 }, async () => {
  const r = await runNserve(['start', 'examples/hello.mjs', '-w', '2', '--bind', 'tcp://127.0.0.1:0'], {
    env,
  });
  assert.equal(r.code, 2);
  assert.match(
    r.stderr,
    /^nserve: error: cluster mode \(-w 2\) needs nserve's native addon \(Linux\), which is unavailable: NSERVE_NO_ADDON=1.*\n$/,
  );
});
