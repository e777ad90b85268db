import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { renderSignalsDoc } from '../../src/control/signals.js';
import { EVENTS_DOC_BEGIN, EVENTS_DOC_END, renderEventsDoc } from '../../src/log/events.js';
import { ROOT } from '../helpers/server.js';

test('docs/signals.md is generated from the signal table', () => {
  assert.equal(fs.readFileSync(path.join(ROOT, 'docs/signals.md'), 'utf8'), renderSignalsDoc());
});

test("docs/operating.md's list of log events is generated from the event table", () => {
  const doc = fs.readFileSync(path.join(ROOT, 'docs/operating.md'), 'utf8');
  const begin = doc.indexOf(EVENTS_DOC_BEGIN);
  const end = doc.indexOf(EVENTS_DOC_END);
  assert.ok(begin !== -1 && end > begin, 'docs/operating.md has the events section markers');
  assert.equal(
    doc.slice(begin, end + EVENTS_DOC_END.length),
    renderEventsDoc(),
    'run `npm run build && node scripts/events-doc.mjs`',
  );
});
