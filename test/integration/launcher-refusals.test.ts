// The launcher's refusals reach a client the same way in every mode: one table of (state, action) →
// answer, run against a real single-mode server and a real -w 2 cluster through the control API (portable
// mode has no control server: no-addon.test.ts checks its refusals over signals). A halt during a graceful
// stop ends it at once in each.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, test } from 'node:test';
import { controlRequest, startControlled } from '../helpers/control.js';
import { switchRelease, writeRelease } from '../helpers/releases.js';
import { killAll, tmpDir, until } from '../helpers/server.js';

after(killAll);

interface Row {
  action: string;
  status: number;
  /** The refusal's words (409), the same in both modes unless `single` says otherwise. */
  error?: string;
  single?: { status: number; error?: string };
}

const RUNNING: Row[] = [
  { action: 'reload-certs', status: 409, error: 'reload-certs needs an ssl:// bind (none is configured)' },
  { action: 'reload-worker-directory', status: 200 },
];
const RESTARTING: Row[] = [
  { action: 'restart', status: 409, error: 'a restart is in progress' },
  { action: 'phased-restart', status: 409, error: 'a restart is in progress' },
  { action: 'rollback', status: 409, error: 'a restart is in progress' },
  { action: 'reload-certs', status: 409, error: 'reload-certs needs an ssl:// bind (none is configured)' },
];
const STOPPING: Row[] = [
  { action: 'stop', status: 409, error: 'already stopping' },
  { action: 'restart', status: 409, error: 'the server is stopping' },
  {
    action: 'workers/increment',
    status: 409,
    error: 'the server is stopping',
    single: { status: 409, error: 'changing the worker count needs cluster mode (-w N)' },
  },
];

for (const mode of ['single', 'cluster'] as const) {
  test(`${mode} mode: the launcher's refusal table, running, restarting and stopping; a halt ends a graceful stop`, {
    timeout: 90_000,
  }, async (t) => {
    const root = tmpDir(t);
    writeRelease(root, 'v1');
    writeRelease(root, 'slow', { bootMs: 3000 });
    switchRelease(root, 'v1');
    const state = path.join(root, 'nserve.state');
    const { srv } = await startControlled(
      t,
      'app.mjs',
      { url: 'auto', state },
      {
        directory: path.join(root, 'current'),
        ...(mode === 'cluster' ? { workers: 2 } : {}),
        // Single mode: the restart lasts the new code's boot (checked before the exec), as a cluster's
        // lasts its new workers' boot. The delay holds the stop long enough to ask again.
        args: ['--boot-check', '--shutdown-delay', '20'],
      },
    );
    const sock = path.join(root, 'nserve.ctl.sock');
    const { controlToken } = JSON.parse(fs.readFileSync(state, 'utf8')) as { controlToken: string };
    const post = (action: string) => controlRequest(sock, 'POST', `/${action}`, { token: controlToken });
    const check = async (phase: string, rows: Row[]) => {
      for (const row of rows) {
        const want = mode === 'single' && row.single !== undefined ? row.single : row;
        const got = await post(row.action);
        assert.equal(got.status, want.status, `${phase}: ${row.action}: ${got.text}`);
        if (want.error !== undefined) assert.equal(got.body.error, want.error, `${phase}: ${row.action}`);
      }
    };
    await check('running', RUNNING);

    switchRelease(root, 'slow');
    assert.equal((await post('restart')).status, 202);
    await until('the restart to begin', async () =>
      srv.lines.some((l) => l.lifecycle !== undefined && l.to === 'restarting'),
    );
    await check('restarting', RESTARTING);
    // A stop during the restart cancels it, then stops (held by --shutdown-delay).
    assert.equal((await post('stop')).status, 202);
    await until('the stop to begin', async () =>
      srv.lines.some((l) => l.lifecycle !== undefined && l.to === 'stopping'),
    );
    await check('stopping', STOPPING);
    const halted = Date.now();
    assert.equal((await post('halt')).status, 202);
    await until('the server to exit', async () => srv.exitStatus, 10_000);
    assert.ok(Date.now() - halted < 8000, 'the halt ended the 20 s shutdown delay at once');
    assert.equal(srv.exitStatus?.code, 0);
  });
}
