// The restart sequence and the lifecycles, behind the fake-OS seam (RestartOps): no processes here; the
// real-process behaviour is covered by test/integration.
import assert from 'node:assert/strict';
import * as os from 'node:os';
import { test } from 'node:test';
import { buildConfig } from '../../src/config/index.js';
import {
  Lifecycle,
  SERVER_TRANSITIONS,
  type ServerState,
  unlessAborted,
} from '../../src/launcher/lifecycle.js';
import { createLogger } from '../../src/log/logger.js';
import type { FdInfo } from '../../src/native/index.js';
import type { ExecOptions } from '../../src/restart/exec.js';
import { type ExecPlan, prepareExec, type RestartOps } from '../../src/restart/prepare.js';

const log = createLogger({ level: 'silent', base: {} });
const ctx = {
  config: buildConfig({ app: 'app.mjs', cli: {}, file: {}, cwd: os.tmpdir(), env: {} }),
  log,
  launchCwd: '/',
  restart: { count: 0, requestedAt: undefined },
};

const leak = { fd: 40, kind: 'file', target: '/tmp/x', cloexec: false, flags: 0 } as FdInfo;

function fakeOps(over: Partial<RestartOps> & { calls?: string[] } = {}): RestartOps & { calls: string[] } {
  const calls = over.calls ?? [];
  return {
    calls,
    bootCheck: async (what) => {
      calls.push(`bootCheck:${what}`);
      return { ok: true, file: 'app.mjs', ms: 1 };
    },
    leakCandidates: () => {
      calls.push('leakCandidates');
      return [];
    },
    runRestartHooks: async () => {
      calls.push('hooks');
    },
    checkLeaks: () => {
      calls.push('checkLeaks');
      return { leaks: [], closedByHooks: [], refuse: false };
    },
    exec: (o: ExecOptions): never => {
      calls.push(`exec:${o.keepFds.join(',')}`);
      throw new Error('exec refused by the fake');
    },
    ...over,
  };
}

function plan(over: Partial<ExecPlan> = {}): ExecPlan {
  return {
    check: 'app',
    keepFds: () => [5, 6],
    handoff: (leaked) => ({
      listeners: [],
      workers: [],
      generation: 0,
      history: [],
      startedAt: 'now',
      leaked,
      directory: '/',
      configFile: null,
      optimistic: false,
    }),
    requestedAt: 1,
    signal: new AbortController().signal,
    ...over,
  };
}

test('prepareExec runs boot check → drain → candidates → hooks → leak check → exec, in that order', async () => {
  const ops = fakeOps();
  const afterCheck = async (): Promise<void> => {
    ops.calls.push('drain');
  };
  const out = await prepareExec(ctx, plan({ afterCheck }), ops);
  assert.deepEqual(ops.calls, [
    'bootCheck:app',
    'drain',
    'leakCandidates',
    'hooks',
    'checkLeaks',
    'exec:5,6',
  ]);
  assert.equal(out.code, 'ERR_NSERVE_EXEC', 'a failed exec is reported, the caller resumes');
  assert.equal(out.stopped, false);
});

test('a release that fails the boot check is abandoned before anything irreversible', async () => {
  const ops = fakeOps({ bootCheck: async () => ({ ok: false, error: 'boom at load', ms: 1 }) });
  const out = await prepareExec(ctx, plan({ afterCheck: async () => assert.fail('must not drain') }), ops);
  assert.deepEqual(out, { code: 'ERR_NSERVE_BOOT_CHECK', reason: 'boom at load', stopped: false });
  assert.equal(ops.calls.length, 0);
});

test('leak policy refuse abandons the restart and names the descriptor', async () => {
  const ops = fakeOps({
    checkLeaks: () => ({
      leaks: [{ fd: 40, kind: 'file', target: '/tmp/x' }],
      closedByHooks: [],
      refuse: true,
    }),
    leakCandidates: () => [leak],
  });
  const out = await prepareExec(ctx, plan(), ops);
  assert.equal(out.code, 'ERR_NSERVE_FD_LEAK');
  assert.match(out.reason, /40 \(\/tmp\/x\)/);
  assert.ok(!ops.calls.some((c) => c.startsWith('exec')));
});

test('a stop during the boot check or the hooks cancels the restart: never execs', async () => {
  for (const step of ['bootCheck', 'hooks'] as const) {
    const abort = new AbortController();
    const ops = fakeOps();
    if (step === 'bootCheck') {
      ops.bootCheck = async () => {
        abort.abort();
        return { ok: true, file: 'app.mjs', ms: 1 };
      };
    } else {
      ops.runRestartHooks = async () => abort.abort();
    }
    const out = await prepareExec(ctx, plan({ signal: abort.signal }), ops);
    assert.equal(out.stopped, true, step);
    assert.ok(!ops.calls.some((c) => c.startsWith('exec')), step);
  }
});

test('exec failure undoes beforeExec (cluster: channels watched again)', async () => {
  const seen: string[] = [];
  await prepareExec(
    ctx,
    plan({ beforeExec: () => seen.push('detach'), execFailed: () => seen.push('reattach') }),
    fakeOps(),
  );
  assert.deepEqual(seen, ['detach', 'reattach']);
});

test("the server's locks cross every exec: kept open (FD_CLOEXEC cleared) and named in the hand-off", async () => {
  let seen: ExecOptions | undefined;
  const locks = [
    { file: '/run/app.pid.lock', fd: 21 },
    { file: '/run/app.state.lock', fd: 22 },
  ];
  await prepareExec(
    { ...ctx, locks },
    plan(),
    fakeOps({
      exec: (o: ExecOptions): never => {
        seen = o;
        throw new Error('exec refused by the fake');
      },
    }),
  );
  assert.deepEqual(seen?.keepFds, [5, 6, 21, 22]);
  assert.deepEqual(seen?.handoff.locks, locks);
});

test('the server lifecycle allows only its transitions, and logs each with from/to/reason', () => {
  const lines: unknown[] = [];
  const fakeLog = { info: (o: unknown) => lines.push(o), debug: () => {} };
  const l = new Lifecycle<ServerState>('server', 'booting', SERVER_TRANSITIONS, fakeLog as never);
  l.to('running', 'booted');
  l.to('restarting', 'SIGUSR2');
  l.to('running', 'abandoned');
  l.to('stopping', 'SIGTERM');
  assert.throws(() => l.to('running', 'no way back'), /no transition stopping → running/);
  assert.deepEqual(lines[0], {
    event: 'state.changed',
    lifecycle: 'server',
    from: 'booting',
    to: 'running',
    reason: 'booted',
  });
  assert.equal(lines.length, 4);
});

test('unlessAborted rejects as soon as a stop arrives', async () => {
  const abort = new AbortController();
  const never = new Promise<void>(() => {});
  const p = unlessAborted(never, abort.signal);
  abort.abort();
  await assert.rejects(p, /stopping/);
});
