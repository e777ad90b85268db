// The house rules of src/ (docs/architecture.md), checked by `npm run lint`:
//   - at most 4 modules loose in src/ (the public entry and leaf helpers: version, errors); everything
//     else lives in the folder of its role;
//   - no module beside a folder of its name (src/config.ts next to src/config/): the folder's index.ts;
//   - no two modules of the same name in different folders (index.ts aside), so that "(deploy.ts)" in a
//     comment names one file;
//   - no module over 400 lines: past that, split it by role;
//   - no cycle of value imports among src/ modules. `import type`, `export type` and imports whose names
//     are all `type` carry no value and do not count; neither does a lazy `await import()`, which runs
//     after both modules have loaded. A cycle works only while every use sits inside a function; the
//     fix is a leaf module holding what the others import back (types, the loaded addon).
//
// node scripts/check-structure.mjs [ROOT]   (ROOT defaults to this package): one line per problem,
// exit 1 if there is any.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const MAX_LOOSE = 4;
const MAX_LINES = 400;

const root = path.resolve(process.argv[2] ?? path.join(path.dirname(fileURLToPath(import.meta.url)), '..'));
const src = path.join(root, 'src');
const isModule = (name) => /\.(ts|mts|cts)$/.test(name) && !name.endsWith('.d.ts');
const rel = (f) => path.relative(src, f);

const files = [];
(function walk(dir) {
  for (const e of fs.readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
    const f = path.join(dir, e.name);
    if (e.isDirectory()) walk(f);
    else if (isModule(e.name)) files.push(f);
  }
})(src);

const problems = [];

const loose = files.filter((f) => path.dirname(f) === src);
if (loose.length > MAX_LOOSE)
  problems.push(
    `${loose.length} modules loose in src/ (at most ${MAX_LOOSE}): ${loose.map(rel).join(', ')}; move each into the folder of its role`,
  );

for (const f of files) {
  const dir = f.replace(/\.(ts|mts|cts)$/, '');
  if (fs.existsSync(dir) && fs.statSync(dir).isDirectory())
    problems.push(`src/${rel(f)} sits beside the folder src/${rel(dir)}/: make it src/${rel(dir)}/index.ts`);
}

const byName = new Map();
for (const f of files) {
  const name = path.basename(f).replace(/\.(ts|mts|cts)$/, '');
  if (name !== 'index') byName.set(name, [...(byName.get(name) ?? []), f]);
}
for (const [name, same] of byName)
  if (same.length > 1)
    problems.push(
      `${same.length} modules named ${name}: ${same.map((f) => `src/${rel(f)}`).join(', ')}; rename all but one`,
    );

const sources = new Map();
for (const f of files) {
  const text = fs.readFileSync(f, 'utf8');
  sources.set(f, text);
  // Counted as the project's gate counts them: every newline-separated piece, the last (empty) one too.
  const lines = text.split('\n').length;
  if (lines > MAX_LINES)
    problems.push(`src/${rel(f)} has ${lines} lines (at most ${MAX_LINES}): split it by role`);
}

// ── value-import cycles ─────────────────────────────────────────────────────────────────────────────
function resolveImport(from, spec) {
  if (!spec.startsWith('.')) return undefined;
  const base = path.resolve(path.dirname(from), spec).replace(/\.(js|mjs|cjs)$/, '');
  for (const c of [`${base}.ts`, `${base}.mts`, `${base}.cts`, path.join(base, 'index.ts')])
    if (sources.has(c)) return c;
  return undefined;
}

/** Whether a top-level import or export statement carries a value at load time. */
function carriesValue(node) {
  if (ts.isImportDeclaration(node)) {
    const clause = node.importClause;
    if (clause === undefined) return true; // import './x.js': run for its effects
    if (clause.isTypeOnly) return false;
    if (clause.name !== undefined) return true;
    const bindings = clause.namedBindings;
    if (bindings === undefined || ts.isNamespaceImport(bindings)) return true;
    return bindings.elements.length === 0 || bindings.elements.some((e) => !e.isTypeOnly);
  }
  if (ts.isExportDeclaration(node)) {
    if (node.isTypeOnly) return false;
    const clause = node.exportClause;
    if (clause === undefined || !ts.isNamedExports(clause)) return true; // export * [as ns] from
    return clause.elements.length === 0 || clause.elements.some((e) => !e.isTypeOnly);
  }
  return false;
}

const graph = new Map();
for (const [f, text] of sources) {
  const sf = ts.createSourceFile(f, text, ts.ScriptTarget.Latest, false);
  const deps = new Set();
  for (const node of sf.statements) {
    if (!(ts.isImportDeclaration(node) || ts.isExportDeclaration(node))) continue;
    if (node.moduleSpecifier === undefined || !ts.isStringLiteral(node.moduleSpecifier)) continue;
    if (!carriesValue(node)) continue;
    const target = resolveImport(f, node.moduleSpecifier.text);
    if (target !== undefined) deps.add(target);
  }
  graph.set(f, [...deps].sort());
}

// Tarjan's strongly connected components: every component of more than one module (or a module that
// imports itself) is a cycle.
let counter = 0;
const index = new Map();
const low = new Map();
const stack = [];
const onStack = new Set();
const cycles = [];
function visit(v) {
  index.set(v, counter);
  low.set(v, counter);
  counter++;
  stack.push(v);
  onStack.add(v);
  for (const w of graph.get(v)) {
    if (!index.has(w)) {
      visit(w);
      low.set(v, Math.min(low.get(v), low.get(w)));
    } else if (onStack.has(w)) low.set(v, Math.min(low.get(v), index.get(w)));
  }
  if (low.get(v) !== index.get(v)) return;
  const component = [];
  let w;
  do {
    w = stack.pop();
    onStack.delete(w);
    component.push(w);
  } while (w !== v);
  if (component.length > 1 || graph.get(v).includes(v)) cycles.push(component);
}
for (const v of graph.keys()) if (!index.has(v)) visit(v);

/** One concrete loop inside a component, to name in the message: a → b → … → a. */
function loopThrough(component) {
  const inside = new Set(component);
  const start = component.slice().sort()[0];
  const seen = new Map([[start, undefined]]);
  const queue = [start];
  while (queue.length > 0) {
    const v = queue.shift();
    for (const w of graph.get(v)) {
      if (!inside.has(w)) continue;
      if (w === start) {
        const path = [];
        for (let u = v; u !== undefined; u = seen.get(u)) path.unshift(u);
        return [...path, start];
      }
      if (!seen.has(w)) {
        seen.set(w, v);
        queue.push(w);
      }
    }
  }
  return [start, start];
}
for (const c of cycles)
  problems.push(
    `value-import cycle: ${loopThrough(c).map(rel).join(' → ')}${c.length > 2 ? ` (${c.length} modules in the cycle)` : ''}; move what they import back into a leaf module`,
  );

if (problems.length > 0) {
  for (const p of problems) console.error(`check-structure: ${p}`);
  process.exit(1);
}
console.log(
  `check-structure: ${files.length} modules, ${loose.length} loose in src/, no value-import cycle, none over ${MAX_LINES} lines, no name twice`,
);
