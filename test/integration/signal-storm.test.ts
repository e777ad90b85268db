// The restart signals on whatever Node line runs the suite (.ci/run runs it on the machine's Node, on 22,
// 24 and 26): USR2 and USR1 in turn each bring new code, after any number of restarts; a storm of USR2
// (a deploy tool that sends it twice, two deploys close together) never kills the server, including in
// the milliseconds after an exec while Node starts; and no process ever listens on an inspector port.
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { getJson, Load, stopWithoutFailures } from '../helpers/load.js';
import { now } from '../helpers/logged-process.js';
import { makeReleases, switchRelease, versions } from '../helpers/releases.js';
import { restart, signalRestart } from '../helpers/restart.js';
import {
  childPids,
  isEvent,
  killAll,
  listeningPorts,
  processAlive,
  type ServerProcess,
  serveCurrent,
  until,
} from '../helpers/server.js';

after(killAll);

const MODES = [
  { name: 'single mode', workers: undefined },
  { name: 'cluster -w 2', workers: 2 },
] as const;

/** The server and its workers listen on the bind only: no inspector port (9229) anywhere. */
function assertOnlyTheBind(srv: ServerProcess, port: number, when: string): void {
  for (const pid of [srv.pid, ...childPids(srv.pid)]) {
    for (const p of listeningPorts(pid))
      assert.equal(p, port, `${when}: pid ${pid} listens only on the bind`);
  }
}

for (const mode of MODES) {
  test(`${mode.name}: USR2, USR1, USR2, USR1 under load: each brings the new code, no request fails`, {
    timeout: 120_000,
  }, async (t) => {
    const root = makeReleases(t, versions(5, { bootMs: 300 }), 'v1');
    const { srv, port } = await serveCurrent(
      t,
      root,
      mode.workers === undefined ? {} : { workers: mode.workers },
    );
    const load = new Load({ port, keepAlive: 3, newConnection: 2, post: 1 });
    try {
      const kinds = ['hot', 'phased', 'hot', 'phased'] as const;
      for (const [i, kind] of kinds.entries()) {
        const version = `v${i + 2}`;
        await load.roundsSince(now(), 2);
        await restart(srv, kind, { release: { root, version } });
        await until(
          `${version} to answer after ${kind}`,
          async () => (await getJson(port)).body.version === version,
          10_000,
        );
        assertOnlyTheBind(srv, port, `after restart ${i + 1} (${kind})`);
      }
      await load.roundsSince(now(), 2);
    } finally {
      await stopWithoutFailures(load, t);
    }
    assert.ok(processAlive(srv.pid));
  });

  test(`${mode.name}: SIGUSR2 every 50 ms for 4 s under load: it survives, no request fails, then a clean USR2 brings new code`, {
    timeout: 120_000,
  }, async (t) => {
    const root = makeReleases(t, versions(2), 'v1');
    const { srv, port } = await serveCurrent(
      t,
      root,
      mode.workers === undefined ? {} : { workers: mode.workers },
    );
    const load = new Load({ port, keepAlive: 3, newConnection: 2, post: 1 });
    const mark = srv.lines.length;
    let sent = 0;
    try {
      await load.roundsSince(now(), 2);
      const end = now() + 4000;
      while (now() < end) {
        assert.ok(processAlive(srv.pid), `alive after ${sent} signals`);
        srv.signal('SIGUSR2');
        sent++;
        await new Promise((r) => setTimeout(r, 50));
      }
      // The storm's last restart finishes; the server is still the same process, serving.
      await new Promise((r) => setTimeout(r, 500));
      assert.ok(processAlive(srv.pid), `alive after all ${sent} signals`);
      const restarts = srv.lines.slice(mark).filter((l) => isEvent(l, 'restart.hot.done'));
      assert.ok(
        restarts.length >= 2,
        `the storm restarted the server more than once (${restarts.length} of ${sent} signals)`,
      );
      // A clean USR2 once the last one is done. One still under way says "ignored", or its own "done"
      // line (it loaded v1) comes before ours: then v2 does not answer, and the signal is sent again.
      switchRelease(root, 'v2');
      const answersV2 = async (): Promise<boolean> => (await getJson(port)).body.version === 'v2';
      await until(
        'a clean USR2 to bring v2',
        async () => {
          const outcome = await signalRestart(srv, 'hot', { deadlineMs: 20_000 });
          if (outcome.ok && (await until('v2 to answer', answersV2, 3000).catch(() => false))) return true;
          await new Promise((r) => setTimeout(r, 300));
          return false;
        },
        60_000,
        0,
      );
      await load.roundsSince(now(), 2);
    } finally {
      await stopWithoutFailures(load, t);
    }
    assertOnlyTheBind(srv, port, 'after the storm');
  });
}

test("Node's --report-on-signal on SIGUSR2 (its default) is named at boot: every hot restart would write a report; on another signal, no warning", {
  timeout: 30_000,
}, async (t) => {
  const root = makeReleases(t, versions(1), 'v1');
  for (const [flags, warned] of [
    ['--report-on-signal', true],
    ['--report-on-signal --report-signal=SIGPWR', false],
  ] as const) {
    const { srv } = await serveCurrent(t, root, {
      env: { NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} ${flags}`.trim() },
    });
    if (warned) {
      const line = await srv.waitForEvent('signal.report.shared', 10_000);
      assert.equal(line.signal, 'SIGUSR2', flags);
      assert.match(String(line.msg), /--report-signal=SIGPWR/);
    } else {
      // Logged at boot if at all: by the end of a hot restart (SIGUSR2, no report on it) it would be there.
      await restart(srv, 'hot');
      const line = srv.lines.find((l) => isEvent(l, 'signal.report.shared'));
      assert.equal(line, undefined, `${flags}: ${JSON.stringify(line)}`);
    }
    srv.signal('SIGTERM');
    assert.equal((await srv.waitExit()).code, 0);
  }
});
