// The exposition format, checked by Prometheus' own parser: `promtool check metrics` (Debian's
// prometheus package). Part of `npm run test:tools`, which .ci/run runs after installing it; without
// promtool these tests fail, naming the package.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import { getJson, Load, stopWithoutFailures } from '../helpers/load.js';
import { now } from '../helpers/logged-process.js';
import { promtoolCheck, type Scrape, scrape } from '../helpers/metrics.js';
import { restart } from '../helpers/restart.js';
import { killAll, type ServerProcess, serveApp, tmpDir } from '../helpers/server.js';

after(killAll);

before(() => {
  const r = spawnSync('promtool', ['--version'], { stdio: 'ignore' });
  assert.ok(
    r.error === undefined && r.status === 0,
    'promtool not found: apt-get install --no-install-recommends prometheus (Debian), as .ci/run does',
  );
});

async function metricsPort(srv: ServerProcess): Promise<number> {
  const line = await srv.waitForEvent('metrics.listener.serving', 20_000);
  const url = String(line.url);
  return Number(url.slice(url.lastIndexOf(':') + 1));
}

function assertPromtool(s: Scrape, where: string): void {
  assert.equal(s.status, 200, `${where}: ${s.text.slice(0, 200)}`);
  const check = promtoolCheck(s.text);
  assert.ok(check.ok, `${where}: promtool check metrics: ${check.output}`);
}

test('-w 2 under load: promtool parses /metrics on the dedicated listener and the control server', async (t) => {
  const socket = path.join(tmpDir(t), 'ctl.sock');
  const { srv, port } = await serveApp(t, 'examples/hello.mjs', {
    workers: 2,
    args: [
      '--metrics-url',
      'tcp://127.0.0.1:0',
      '--control-url',
      `unix://${socket}`,
      '--control-token',
      'sekret',
    ],
  });
  const mport = await metricsPort(srv);
  const load = new Load({ port, keepAlive: 4, newConnection: 2 });
  try {
    await load.roundsSince(now(), 3);
    assertPromtool(await scrape(mport), 'the metrics listener');
    assertPromtool(await scrape(socket, { token: 'sekret' }), 'the control server');
    await restart(srv, 'phased');
    await load.roundsSince(now(), 2);
    assertPromtool(await scrape(mport), 'after a phased restart');
  } finally {
    await stopWithoutFailures(load, t);
  }
});

test('single mode: promtool parses /metrics before and after a hot restart', async (t) => {
  const { srv, port } = await serveApp(t, 'examples/hello.mjs', {
    args: ['--metrics-url', 'tcp://127.0.0.1:0'],
  });
  const mport = await metricsPort(srv);
  for (let i = 0; i < 5; i++) await getJson(port);
  assertPromtool(await scrape(mport), 'single mode');
  await restart(srv, 'hot');
  assertPromtool(await scrape(mport), 'after a hot restart');
});
