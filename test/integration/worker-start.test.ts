// How soon a new worker runs the app: its load starts at its spawn, beside the master's checks, hooks
// and exec (cluster hot restart), and before nserve's own logging and HTTP machinery have loaded.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, test } from 'node:test';
import { getJson } from '../helpers/load.js';
import { now } from '../helpers/logged-process.js';
import { makeReleases, versions } from '../helpers/releases.js';
import { restart } from '../helpers/restart.js';
import { killAll, serveApp, serveCurrent, tmpDir, until } from '../helpers/server.js';

after(killAll);

const BOOT_MS = 2500;
const HOOK_MS = 1500;

test('cluster hot restart: the new workers load the app while the master runs its onRestart hook and execs', async (t) => {
  const root = makeReleases(t, versions(2, { bootMs: BOOT_MS }), 'v1');
  const config = path.join(root, 'nserve.config.mjs');
  // A slow onRestart hook: it runs in the old master image, after the new workers are spawned and
  // before the exec.
  fs.writeFileSync(
    config,
    `export default { onRestart: [() => new Promise((r) => setTimeout(r, ${HOOK_MS}))] };\n`,
  );
  const { srv, port } = await serveCurrent(t, root, { workers: 2, args: ['-C', config] });
  const signalled = now();
  await restart(srv, 'hot', { release: { root, version: 'v2' }, deadlineMs: 30_000 });
  let newCodeMs = Number.NaN;
  await until(
    'v2 answers',
    async () => {
      const body = (await getJson(port)).body;
      newCodeMs = now() - signalled;
      return body.version === 'v2';
    },
    10_000,
    5,
  );
  t.diagnostic(`new code ${Math.round(newCodeMs)} ms after the signal (boot ${BOOT_MS}, hook ${HOOK_MS})`);
  // Loaded one after the other, the app could not answer before hook + boot had passed; loaded beside
  // them, it answers after about max(boot, hook + exec) plus the start-up of a worker.
  assert.ok(
    newCodeMs < HOOK_MS + BOOT_MS,
    `new code ${Math.round(newCodeMs)} ms after the signal: not within hook + boot (${HOOK_MS + BOOT_MS} ms)`,
  );
});

test("a worker runs the app's first line before it loads pino; it logs with pino afterwards", async (t) => {
  const dir = tmpDir(t);
  fs.writeFileSync(
    path.join(dir, 'app.mjs'),
    `import { createRequire } from 'node:module';
// The CommonJS cache is the process's: pino (CommonJS) is in it once anyone has loaded it.
const pinoAtLoad = Object.keys(createRequire(import.meta.url).cache).some((f) => f.includes('/node_modules/pino/'));
export default (req, res) => {
  res.setHeader('content-type', 'application/json');
  res.end(JSON.stringify({ pinoAtLoad, pid: process.pid }));
};
`,
  );
  const { srv, port } = await serveApp(t, 'app.mjs', { directory: dir, workers: 1 });
  const { body } = await getJson(port);
  assert.equal(body.pinoAtLoad, false, "pino was loaded before the app's first line ran");
  const booted = await srv.waitForEvent('worker.booted', 5000);
  assert.equal(booted.role, 'worker');
  assert.equal(booted.pid, body.pid, 'the worker logged through its (deferred) logger');
});
