// Listen-compat: the app's own server is never bound, yet closing it at a stop works as the app expects.
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { after, test } from 'node:test';
import { getJson } from '../helpers/load.js';
import { FIXTURES, killAll, serveApp } from '../helpers/server.js';

after(killAll);

test('an app that closes its own server at SIGTERM gets its close, not ERR_SERVER_NOT_RUNNING', async (t) => {
  const { srv, port } = await serveApp(t, path.join(FIXTURES, 'operator/closes-own-server.mjs'));
  assert.equal((await getJson(port)).status, 200);
  srv.signal('SIGTERM');
  const exit = await srv.waitExit(15_000);
  assert.equal(exit.code, 0, srv.stderr);
  assert.match(srv.stderr, /closed its server/);
  assert.doesNotMatch(srv.stderr, /close failed/);
});
