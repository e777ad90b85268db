// The event table (src/log/events.ts): well-formed codes, logEvent writes them at the table's level, and
// every log call in src/ goes through it.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { pino } from 'pino';
import { EVENTS, isEventCode, logEvent } from '../../src/log/events.js';
import { ROOT } from '../helpers/server.js';

test('every event code is dotted lowercase (room.thing[.verb]) with a level and a one-line meaning', () => {
  for (const [code, [level, about]] of Object.entries(EVENTS)) {
    assert.match(code, /^[a-z][a-z0-9-]*(\.[a-z][a-z0-9-]*){1,2}$/, code);
    assert.ok(['fatal', 'error', 'warn', 'info', 'debug'].includes(level), `${code}: ${level}`);
    assert.ok(about.length > 10 && !/[\n|]/.test(about), `${code}: one line, no table pipe: ${about}`);
  }
  assert.ok(isEventCode('restart.hot.done'));
  assert.ok(!isEventCode('restart.hot.nope'));
  assert.ok(!isEventCode('toString'));
});

test('logEvent writes the event code first among the fields, at the level of the table', () => {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>);
      done();
    },
  });
  const log = pino({ level: 'debug', base: {} }, sink);
  logEvent(log, 'worker.replaced', { worker: 1, workerPid: 42 }, 'worker 1 replaced');
  logEvent(log, 'restart.hot.abandoned', 'hot restart abandoned');
  logEvent(log, 'reaper.orphan.reaped', { orphan: 7 }, 'reaped');
  // Never called: tsc (npm run build) fails if a code outside the table compiles.
  const unknown = (): void =>
    // @ts-expect-error: 'worker.vanished' is not in the table
    logEvent(log, 'worker.vanished', 'no such event');
  assert.equal(typeof unknown, 'function');
  assert.deepEqual(
    lines.map((l) => [l.level, l.event, l.msg]),
    [
      [30, 'worker.replaced', 'worker 1 replaced'],
      [50, 'restart.hot.abandoned', 'hot restart abandoned'],
      [20, 'reaper.orphan.reaped', 'reaped'],
    ],
  );
  assert.equal(Object.keys(lines[0]!).filter((k) => !['level', 'time'].includes(k))[0], 'event');
  assert.deepEqual([lines[0]!.worker, lines[0]!.workerPid], [1, 42]);
});

/** `log.info(`, `this.log.warn(`, `m.log.error(`, `log?.[level](`, `….info(` after createLogger(…): calls around the table. */
const DIRECT_CALL =
  /\blog\??\.(fatal|error|warn|info|debug|trace)\(|\blog\??\.?\[|createLogger\([^;]*\)\.(fatal|error|warn|info|debug)\(/;

function directCalls(only: (rel: string) => boolean): string[] {
  const found: string[] = [];
  const walk = (dir: string): void => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const f = path.join(dir, e.name);
      if (e.isDirectory()) walk(f);
      else if (e.name.endsWith('.ts')) {
        const rel = path.relative(path.join(ROOT, 'src'), f);
        // The app's own output (--tag-output) is the app's: it carries no event.
        if (rel === 'log/tag-output.ts' || !only(rel)) continue;
        fs.readFileSync(f, 'utf8')
          .split('\n')
          .forEach((line, i) => {
            if (DIRECT_CALL.test(line)) found.push(`src/${rel}:${i + 1}: ${line.trim()}`);
          });
      }
    }
  };
  walk(path.join(ROOT, 'src'));
  return found;
}

test('every log line in src/ names its event through logEvent (the table), not a bare logger call', () => {
  assert.deepEqual(
    directCalls(() => true),
    [],
  );
});
