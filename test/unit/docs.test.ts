import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { renderSignalsDoc } from '../../src/control/signals.js';
import { ROOT } from '../helpers/server.js';

test('docs/signals.md is generated from the signal table', () => {
  assert.equal(fs.readFileSync(path.join(ROOT, 'docs/signals.md'), 'utf8'), renderSignalsDoc());
});
