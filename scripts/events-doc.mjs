// Writes the list of log events into docs/operating.md, between its two markers, from the table in
// src/log/events.ts (built: run `npm run build` first). test/unit/docs.test.ts fails when they differ.
//   node scripts/events-doc.mjs
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const { renderEventsDoc, EVENTS_DOC_BEGIN, EVENTS_DOC_END } = await import(
  pathToFileURL(path.join(root, 'dist/src/log/events.js')).href
);
const file = path.join(root, 'docs/operating.md');
const text = fs.readFileSync(file, 'utf8');
const begin = text.indexOf(EVENTS_DOC_BEGIN);
const end = text.indexOf(EVENTS_DOC_END);
if (begin === -1 || end < begin) {
  process.stderr.write(`events-doc: ${file} has no "${EVENTS_DOC_BEGIN}" … "${EVENTS_DOC_END}" section\n`);
  process.exit(1);
}
fs.writeFileSync(file, text.slice(0, begin) + renderEventsDoc() + text.slice(end + EVENTS_DOC_END.length));
