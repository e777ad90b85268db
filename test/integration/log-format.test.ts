// --log-format: the real CLI writes one line per event in the chosen format, in single and cluster mode.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, test } from 'node:test';
import logfmt from 'logfmt';
import { killAll, startApp, tmpDir } from '../helpers/server.js';

after(killAll);

test('--log-format logfmt: every line of master and workers is logfmt, with role and worker', async (t) => {
  const srv = startApp(t, 'examples/hello.mjs', { workers: 2, args: ['--log-format', 'logfmt'] });
  const booted = await srv.waitForLog(
    'logfmt boot line',
    (l) => /msg="nserve booted"/.test(String(l.msg)),
    20_000,
  );
  const fields = logfmt.parse(String(booted.msg)) as Record<string, string>;
  assert.equal(fields.level, 'info');
  assert.equal(fields.role, 'master');
  assert.equal(fields.mode, 'cluster');
  assert.ok(
    srv.lines.some((l) => /role=worker worker=1 msg="worker booted"/.test(String(l.msg))),
    srv.tail(),
  );
  for (const l of srv.lines) {
    assert.equal(l.raw, true, `not JSON: ${JSON.stringify(l)}`);
    assert.match(String(l.msg), /^time=\S+ level=\w+ /);
  }
});

test('logFormat pretty from the config file: one line per event, timed restarts say their time', async (t) => {
  const dir = tmpDir(t);
  fs.copyFileSync(path.resolve('examples/hello.mjs'), path.join(dir, 'app.mjs'));
  fs.writeFileSync(path.join(dir, 'nserve.config.json'), JSON.stringify({ logFormat: 'pretty' }));
  const srv = startApp(t, 'app.mjs', { cwd: dir, workers: 1 });
  await srv.waitForLog(
    'pretty boot line',
    (l) => /INFO.*master: nserve booted \{/.test(String(l.msg)),
    20_000,
  );
  const mark = srv.lines.length;
  srv.signal('SIGUSR2');
  const done = await srv.waitForLog(
    'pretty hot restart line',
    (l) => /master: hot restart: done in \d+ ms, pause \d+ ms/.test(String(l.msg)),
    30_000,
    mark,
  );
  assert.match(String(done.msg), /"pauseMs":\d+/);
  for (const l of srv.lines)
    assert.match(String(l.msg), /^\[\d\d:\d\d:\d\d\.\d{3}\] [A-Z]+: (master|worker \d): /);
});

test('--log-format with a bad value: one line naming the valid ones, exit 2', async (t) => {
  const srv = startApp(t, 'examples/hello.mjs', { args: ['--log-format', 'xml'] });
  const exit = await srv.waitExit();
  assert.equal(exit.code, 2);
  const lines = srv.stderr.trim().split('\n');
  assert.equal(lines.length, 1, srv.stderr);
  assert.match(lines[0]!, /^nserve: error: .*--log-format.*xml.*json, pretty, logfmt/);
});
