// npm run docs:options: rewrite the README's options table from the settings table (src/config/settings*.ts).
// Reads the built module (dist/), so run after `npm run build` (the npm script does).
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const { withOptionsTable } = await import(path.join(root, 'dist/src/config/settings-doc.js'));
const file = path.join(root, 'README.md');
const before = fs.readFileSync(file, 'utf8');
const after = withOptionsTable(before);
if (after !== before) fs.writeFileSync(file, after);
process.stdout.write(
  after === before ? 'README.md: options table up to date\n' : 'README.md: options table rewritten\n',
);
