// --redirect-stdout / --redirect-stderr and SIGHUP: rotating the files loses no line, new lines land in
// the new files (master and workers alike); without redirection SIGHUP stops the server gracefully.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import { after, test } from 'node:test';
import { childPids, isEvent, killAll, serveApp, startApp, tmpDir, until } from '../helpers/server.js';

after(killAll);

const APP = `
export default function handler(req, res) {
  const n = new URL(req.url, 'http://x').searchParams.get('n');
  console.log(\`out \${n} \${process.pid}\`);
  console.error(\`err \${n} \${process.pid}\`);
  res.end('ok');
}
`;

function hit(port: number, n: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = http.get(
      { host: '127.0.0.1', port, path: `/?n=${n}`, agent: false, timeout: 5000 },
      (res) => {
        res.resume();
        res.on('end', () =>
          res.statusCode === 200 ? resolve() : reject(new Error(`status ${res.statusCode}`)),
        );
      },
    );
    req.on('timeout', () => req.destroy(new Error(`request ${n}: no answer`)));
    req.on('error', reject);
  });
}

async function hitRange(port: number, from: number, to: number): Promise<void> {
  for (let n = from; n < to; n++) await hit(port, n);
}

function read(file: string): string {
  return fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '';
}

/** n → how many times "<kind> n pid" appears, and the pids that wrote them. */
function tally(text: string, kind: 'out' | 'err'): { count: Map<number, number>; pids: Set<number> } {
  const count = new Map<number, number>();
  const pids = new Set<number>();
  for (const m of text.matchAll(new RegExp(`^${kind} (\\d+) (\\d+)$`, 'gm'))) {
    count.set(Number(m[1]), (count.get(Number(m[1])) ?? 0) + 1);
    pids.add(Number(m[2]));
  }
  return { count, pids };
}

test('rotating redirected log files + SIGHUP: new lines in the new files, none lost', {
  timeout: 40_000,
}, async (t) => {
  const dir = tmpDir(t);
  fs.writeFileSync(path.join(dir, 'app.mjs'), APP);
  const out = path.join(dir, 'out.log');
  const err = path.join(dir, 'err.log');
  const srv = startApp(t, 'app.mjs', {
    directory: dir,
    workers: 2,
    args: ['--redirect-stdout', out, '--redirect-stderr', err],
  });
  const booted = await until('the boot line in out.log', () => {
    const line = read(out)
      .split('\n')
      .find((l) => l.includes('"event":"server.booted"'));
    return line === undefined ? undefined : (JSON.parse(line) as { binds: string[] });
  });
  const port = Number(booted.binds[0]!.split(':').at(-1));
  const workers = childPids(srv.pid);
  assert.equal(workers.length, 2);

  await hitRange(port, 0, 40);
  // logrotate: rename, then HUP. Lines written in between go to the renamed files.
  fs.renameSync(out, `${out}.1`);
  fs.renameSync(err, `${err}.1`);
  await hitRange(port, 40, 60);
  srv.signal('SIGHUP');
  await until('master and both workers to reopen', () => {
    const reopened = read(out)
      .split('\n')
      .filter((l) => l.includes('"event":"log.files.reopened"'));
    return reopened.length === 3 ? reopened : undefined;
  });
  await hitRange(port, 60, 100);
  srv.signal('SIGTERM');
  assert.deepEqual(await srv.waitExit(), { code: 0, signal: null });

  for (const [kind, file] of [
    ['out', out],
    ['err', err],
  ] as const) {
    const old = tally(read(`${file}.1`), kind);
    const fresh = tally(read(file), kind);
    for (let n = 0; n < 100; n++) {
      const times = (old.count.get(n) ?? 0) + (fresh.count.get(n) ?? 0);
      assert.equal(times, 1, `${kind} line ${n} appears once across ${path.basename(file)}{,.1}`);
    }
    for (let n = 60; n < 100; n++)
      assert.ok(fresh.count.has(n), `${kind} ${n} is in the new ${path.basename(file)}`);
    for (let n = 0; n < 40; n++) assert.ok(old.count.has(n), `${kind} ${n} is in the rotated file`);
    assert.deepEqual(
      [...fresh.pids].sort(),
      [...workers].sort(),
      `both workers write ${kind} lines into the new file`,
    );
  }
  assert.match(read(out), /"event":"server.stopped"/, 'the master logs into the new file too');
  assert.equal(srv.lines.length, 0, 'nothing went to the original stdout');
});

test('SIGHUP without redirected output stops the server gracefully', { timeout: 20_000 }, async (t) => {
  const dir = tmpDir(t);
  fs.writeFileSync(path.join(dir, 'app.mjs'), APP);
  const { srv } = await serveApp(t, 'app.mjs', { directory: dir });
  srv.signal('SIGHUP');
  assert.deepEqual(await srv.waitExit(), { code: 0, signal: null });
  assert.ok(srv.lines.some((l) => isEvent(l, 'stop.draining')));
});
