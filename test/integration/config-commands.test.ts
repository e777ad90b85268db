// Where the config came from (boot line, nserve config), commands that belong to ctl, and an app that
// listens on a hard-coded port.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { after, test } from 'node:test';
import { FIXTURES, isEvent, killAll, ROOT, runNserve, serveApp, tmpDir } from '../helpers/server.js';

after(killAll);

function releaseDir(t: Parameters<typeof tmpDir>[0]): string {
  const dir = tmpDir(t);
  fs.copyFileSync(path.join(ROOT, 'examples/hello.mjs'), path.join(dir, 'app.mjs'));
  fs.writeFileSync(path.join(dir, 'nserve.config.json'), JSON.stringify({ drainGrace: 0.5 }));
  return dir;
}

test('a config file found in the working directory is named in the boot line and by nserve config', async (t) => {
  const dir = releaseDir(t);
  const { srv } = await serveApp(t, 'app.mjs', { cwd: dir });
  const booted = srv.lines.find((l) => isEvent(l, 'server.booted'));
  assert.equal(booted?.config, `${path.join(dir, 'nserve.config.json')} (found in the working directory)`);
  // `nserve config` alone prints (no --print needed).
  const r = await runNserve(['config', 'app.mjs'], { cwd: dir });
  assert.equal(r.code, 0, r.stderr);
  const text = r.stdout.map((l) => String(l.msg)).join('\n');
  assert.match(
    text,
    new RegExp(`^configFile +"${path.join(dir, 'nserve.config.json')}" +found in cwd$`, 'm'),
  );
  assert.match(text, /^drainGrace +0\.5 +file$/m);
});

test('config file from -C and from NSERVE_CONFIG say so', async (t) => {
  const dir = releaseDir(t);
  const other = path.join(dir, 'other.json');
  fs.writeFileSync(other, '{}');
  const viaFlag = await runNserve(['config', 'app.mjs', '-C', other, '--json'], { cwd: dir });
  const viaEnv = await runNserve(['config', 'app.mjs', '--json'], {
    cwd: dir,
    env: { NSERVE_CONFIG: other },
  });
  const configFile = (r: typeof viaFlag): unknown => {
    const json = JSON.parse(
      r.stdout.map((l) => (l.raw === true ? l.msg : JSON.stringify(l))).join('\n'),
    ) as Record<string, unknown>;
    return json.configFile;
  };
  assert.deepEqual(configFile(viaFlag), { value: other, source: 'flag' });
  assert.deepEqual(configFile(viaEnv), { value: other, source: 'env' });
  const missing = await runNserve(['config', 'app.mjs'], { cwd: dir, env: { NSERVE_CONFIG: 'nope.json' } });
  assert.equal(missing.code, 2);
  assert.match(
    missing.stderr,
    /^nserve: error: config file not found: .*nope\.json \(from environment NSERVE_CONFIG\)\n$/,
  );
});

for (const command of ['restart', 'stop', 'status', 'stats']) {
  test(`nserve ${command} points to nserve ctl ${command}, one line, exit 2`, async () => {
    const r = await runNserve([command, '-S', '/tmp/x.state']);
    assert.equal(r.code, 2);
    assert.equal(
      r.stderr,
      `nserve: error: ${command} is a ctl command: nserve ctl ${command} -S STATE (or -P PIDFILE; nserve ctl --help)\n`,
    );
  });
}

/** The one stderr line of a server that refused an app listening on HARDCODED_PORT, and its exit code. */
async function hardcodedPortFailure(port: number, args: string[]): Promise<string> {
  const r = await runNserve(
    ['start', path.join(FIXTURES, 'operator/hardcoded-port.mjs'), '--bind', 'tcp://127.0.0.1:0', ...args],
    { env: { HARDCODED_PORT: String(port) } },
  );
  assert.equal(r.code, 2, r.stderr);
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 1, r.stderr);
  return lines[0]!;
}

test('cluster mode names a hard-coded port as single mode does: one line, exit 2, not a raw EADDRINUSE', async () => {
  const probe = net.createServer();
  await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
  const hardcoded = (probe.address() as net.AddressInfo).port;
  await new Promise((r) => probe.close(r));
  // The first worker binds the port, the second gets EADDRINUSE (an uncaught exception before).
  const line = await hardcodedPortFailure(hardcoded, ['-w', '2', '--worker-boot-timeout', '20']);
  assert.match(
    line,
    new RegExp(
      `^nserve: error: app \\S+ listened on port ${hardcoded} instead of \\$PORT \\(\\d+, the port nserve serves\\), and that failed: listen EADDRINUSE: .*\\(in cluster mode every worker runs the app: a port it hard-codes can be bound by one worker only\\): listen on process\\.env\\.PORT`,
    ),
  );
});

test('single mode, a hard-coded port another program holds: the same line, not an uncaught exception', async (t) => {
  const holder = net.createServer();
  await new Promise<void>((r) => holder.listen(0, '127.0.0.1', r));
  t.after(() => holder.close());
  const taken = (holder.address() as net.AddressInfo).port;
  const line = await hardcodedPortFailure(taken, []);
  assert.match(
    line,
    new RegExp(
      `^nserve: error: app \\S+ listened on port ${taken} instead of \\$PORT \\(\\d+, the port nserve serves\\), and that failed: listen EADDRINUSE`,
    ),
  );
});

test('an app listening on a hard-coded port: the error names $PORT, the port nserve serves and the one it tried', async () => {
  const probe = net.createServer();
  await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
  const hardcoded = (probe.address() as net.AddressInfo).port;
  await new Promise((r) => probe.close(r));
  const r = await runNserve(
    [
      'start',
      path.join(FIXTURES, 'operator/hardcoded-port.mjs'),
      '--bind',
      'tcp://127.0.0.1:0',
      '--worker-boot-timeout',
      '1',
    ],
    { env: { HARDCODED_PORT: String(hardcoded) } },
  );
  assert.equal(r.code, 2, r.stderr);
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 1, r.stderr);
  assert.match(
    lines[0]!,
    new RegExp(
      `listened on port ${hardcoded} instead of \\$PORT \\(\\d+, the port nserve serves\\), and did not listen on \\$PORT within 1 s: listen on process\\.env\\.PORT`,
    ),
  );
});
