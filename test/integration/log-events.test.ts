// Every line nserve itself logs names its event (src/log/events.ts), through a boot, a hot restart and
// a stop, in single and cluster mode: operators alert on these codes. The app's own output (tagged by
// --tag-output, with a `stream` field) is the app's and carries none.
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { after, test } from 'node:test';
import { isEventCode } from '../../src/log/events.js';
import { getJson } from '../helpers/load.js';
import { restart } from '../helpers/restart.js';
import { FIXTURES, killAll, type LogLine, type ServerProcess, serveApp } from '../helpers/server.js';

after(killAll);

const APP = path.join(FIXTURES, 'operator/chatty.mjs');

/** Boot, a few requests (app output), a hot restart, more requests, a graceful stop: every line logged. */
async function runThrough(t: Parameters<typeof serveApp>[0], workers?: number): Promise<LogLine[]> {
  const { srv, port } = await serveApp(t, APP, {
    ...(workers === undefined ? {} : { workers }),
    args: ['--log-format', 'json', '--tag-output'],
  });
  for (let i = 0; i < 3; i++) await getJson(port, `/a${i}`).catch(() => undefined);
  await restart(srv, 'hot');
  for (let i = 0; i < 3; i++) await getJson(port, `/b${i}`).catch(() => undefined);
  srv.signal('SIGTERM');
  assert.equal((await srv.waitExit(20_000)).code, 0, srv.tail());
  return [...srv.lines, ...stderrLines(srv)];
}

function stderrLines(srv: ServerProcess): LogLine[] {
  return srv.stderr
    .split('\n')
    .filter((s) => s.trim() !== '')
    .map((s) => {
      try {
        return JSON.parse(s) as LogLine;
      } catch {
        return { msg: s, raw: true };
      }
    });
}

/**
 * nserve's own lines that carry no event from the table. nserve's lines are JSON (--log-format json);
 * the app's are either tagged (a `stream` field) or not JSON at all (what the app writes before tagging
 * starts, and the boot check's short-lived process, which loads the app untagged).
 */
function withoutEvent(lines: readonly LogLine[]): string[] {
  return lines
    .filter((l) => l.stream === undefined && l.raw !== true)
    .filter((l) => !isEventCode(l.event))
    .map((l) => `${String(l.role)}: ${String(l.msg)} (event ${String(l.event)})`);
}

for (const [mode, workers] of [
  ['single', undefined],
  ['cluster -w 2', 2],
] as const) {
  test(`${mode}: every line nserve logs through boot, hot restart and stop carries an event of the table`, async (t) => {
    const lines = await runThrough(t, workers);
    assert.ok(
      lines.some((l) => l.stream === 'stdout'),
      'the app wrote tagged lines',
    );
    assert.deepEqual(withoutEvent(lines), []);
  });
}

test('cluster -w 2: the workers and the restart name their events', async (t) => {
  const lines = await runThrough(t, 2);
  // A worker's own lines all come from modules that log through the table.
  const workerLines = lines.filter((l) => l.role === 'worker' && l.stream === undefined);
  assert.ok(workerLines.length > 0);
  assert.deepEqual(withoutEvent(workerLines), []);
  const events = new Set(lines.map((l) => l.event));
  for (const e of [
    'worker.spawned',
    'worker.booted',
    'restart.hot.started',
    'restart.hot.done',
    'drain.done',
  ])
    assert.ok(events.has(e), `${e} logged; events seen: ${[...events].join(', ')}`);
  // The app's own output is not labelled.
  assert.ok(lines.filter((l) => l.stream !== undefined).every((l) => l.event === undefined));
});
