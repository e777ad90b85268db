// --tag-output: the app's stdout/stderr lines carry the worker that wrote them, in the log format, on
// the descriptor they were written to.
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { after, test } from 'node:test';
import { getJson } from '../helpers/load.js';
import { FIXTURES, killAll, serveApp, until } from '../helpers/server.js';

after(killAll);

const APP = path.join(FIXTURES, 'operator/chatty.mjs');

async function hit(port: number, n: number): Promise<void> {
  for (let i = 0; i < n; i++) await getJson(port, `/r${i}`).catch(() => undefined);
}

test('cluster --tag-output: every app line is a JSON event naming its worker and stream', async (t) => {
  const { srv, port } = await serveApp(t, APP, { workers: 2, args: ['--tag-output'] });
  await hit(port, 20);
  const appLines = await until('20 tagged request lines', () => {
    const lines = srv.lines.filter((l) => String(l.msg).startsWith('chatty: request'));
    return lines.length >= 20 ? lines : undefined;
  });
  for (const l of appLines) {
    assert.equal(l.raw, undefined, `not JSON: ${JSON.stringify(l)}`);
    assert.equal(l.role, 'worker');
    assert.ok(l.worker === 0 || l.worker === 1, JSON.stringify(l));
    assert.equal(l.stream, 'stdout');
  }
  // Lines from both workers (the kernel spreads connections over both slots).
  assert.deepEqual(new Set(appLines.map((l) => l.worker)), new Set([0, 1]));
  // Writes without a newline are joined into one line.
  assert.equal(srv.lines.filter((l) => l.msg === 'chatty: partial line').length, 2);
  // stderr lines stay on stderr, tagged too.
  const errLines = srv.stderr
    .trim()
    .split('\n')
    .map((s) => JSON.parse(s) as Record<string, unknown>);
  assert.equal(errLines.length, 2, srv.stderr);
  assert.ok(errLines.every((l) => l.stream === 'stderr' && /^chatty: loaded in \d+$/.test(String(l.msg))));
});

test('without --tag-output the app writes its lines as they are', async (t) => {
  const { srv, port } = await serveApp(t, APP, { workers: 1 });
  await hit(port, 1);
  const line = await srv.waitForMsg(/^chatty: request/);
  assert.equal(line.raw, true);
});
