import assert from 'node:assert/strict';
import { test } from 'node:test';
import logfmt from 'logfmt';
import { lineFormatter, logfmtFields } from '../../src/log/logger.js';

const line = (o: Record<string, unknown>): string =>
  `${JSON.stringify({ level: 30, time: '2026-12-01T10:00:00.000Z', pid: 7, hostname: 'h', ...o })}\n`;

const err = {
  type: 'TypeError',
  message: "Cannot read properties of undefined (reading 'foo')\nsecond line",
  stack:
    "TypeError: Cannot read properties of undefined (reading 'foo')\n    at file:///srv/app/typeerr.js:3:17\n    at ModuleJob.run (node:internal/modules/esm/module_job:325:25)",
};

test('pretty: one line per event with role, worker, message and fields; errors reduced to their first frame', () => {
  const pretty = lineFormatter('pretty');
  const done = pretty(
    line({ role: 'master', msg: 'hot restart: done in 492 ms, pause 13 ms', generation: 3, pauseMs: 13 }),
  );
  assert.equal(done.trimEnd().split('\n').length, 1, done);
  assert.match(
    done,
    /INFO.*master: hot restart: done in 492 ms, pause 13 ms \{"generation":3,"pauseMs":13\}/,
  );
  assert.doesNotMatch(done, /hostname|"pid"/);
  const failed = pretty(line({ level: 50, role: 'worker', worker: 1, phase: 2, msg: 'worker failed', err }));
  assert.equal(failed.trimEnd().split('\n').length, 1, failed);
  assert.match(failed, /ERROR.*worker 1: worker failed/);
  assert.match(
    failed,
    /TypeError: Cannot read properties of undefined \(reading 'foo'\) \(at file:\/\/\/srv\/app\/typeerr\.js:3:17\)/,
  );
});

test('logfmt: one parseable line, level as a label, nested values as JSON, no raw newline', () => {
  const fmt = lineFormatter('logfmt');
  const out = fmt(line({ role: 'worker', worker: 2, msg: 'worker booted', binds: ['tcp://a:1'], err }));
  assert.equal(out.trimEnd().split('\n').length, 1, out);
  assert.ok(
    out.startsWith('time=2026-12-01T10:00:00.000Z level=info role=worker worker=2 msg="worker booted"'),
    out,
  );
  const parsed = logfmt.parse(out.trimEnd()) as Record<string, unknown>;
  assert.equal(parsed.msg, 'worker booted');
  assert.equal(parsed.binds, '["tcp://a:1"]');
  assert.match(String(parsed.err), /^TypeError: .* \(at file:\/\/\/srv\/app\/typeerr\.js:3:17\)$/);
  assert.equal(logfmtFields({ msg: 'a\nb' }).msg, 'a\\nb');
});

test('json: the line is left as pino wrote it, but for DEL, C1 and U+2028/2029 escaped as JSON', () => {
  const json = lineFormatter('json');
  const plain = line({ msg: 'a\\nb "quoted"' });
  assert.equal(json(plain), plain);
  const c1 = line({ msg: 'x\u009b31my\u007fz\u2028w' });
  const out = json(c1);
  assert.doesNotMatch(out, /[\u007f-\u009f\u2028]/);
  assert.deepEqual(JSON.parse(out), JSON.parse(c1));
});
