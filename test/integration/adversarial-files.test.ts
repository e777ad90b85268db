// The files nserve writes, probed as an unlucky operator or a hostile local user would: a full disk under
// the log files, symlinks planted at the names nserve writes, a second server on the same pidfile or state
// file, a pidfile in a directory that does not exist.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import { after, test } from 'node:test';
import {
  childPids,
  isEvent,
  killAll,
  processAlive,
  runNserve,
  type ServerProcess,
  startNserve,
  tmpDir,
  until,
} from '../helpers/server.js';

after(killAll);

/** One GET over a unix socket: status and body, or the error code. */
function get(socketPath: string, urlPath = '/'): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ socketPath, path: urlPath, agent: false, timeout: 5000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        body += c;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${urlPath}: no answer within 5 s`)));
    req.on('error', reject);
  });
}

/** Wait until the server answers on `sock` (its log goes to a file, so the boot line cannot be read). */
async function waitServing(srv: ServerProcess, sock: string, timeoutMs = 20000): Promise<void> {
  await until(
    `server pid ${srv.pid} answering on ${sock}`,
    async () => {
      if (!processAlive(srv.pid)) throw new Error(`server exited before serving; stderr: ${srv.stderr}`);
      try {
        return (await get(sock)).status === 200;
      } catch {
        return false;
      }
    },
    timeoutMs,
  );
}

/** An app that logs with console.log on every request and throws asynchronously on /throw. */
function writeLoggingApp(dir: string): string {
  const file = path.join(dir, 'app.mjs');
  fs.writeFileSync(
    file,
    `export default function app(req, res) {
  console.log('request', req.url);
  if (req.url === '/throw') setImmediate(() => { throw new Error('boom from the app'); });
  res.end(JSON.stringify({ pid: process.pid }));
}
`,
  );
  return file;
}

async function serveAll(sock: string, n: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    const r = await get(sock, `/r${i}`);
    assert.equal(r.status, 200, `request ${i}`);
  }
}

// ── item 3: a failed log write never crashes anything ──────────────────────────────────────────────────

test('single mode starts and serves with --redirect-stdout on a full disk (/dev/full) and --access-log', async (t) => {
  const dir = tmpDir(t);
  const sock = path.join(dir, 'app.sock');
  const srv = startNserve([
    'start',
    writeLoggingApp(dir),
    '--bind',
    `unix://${sock}`,
    '--redirect-stdout',
    '/dev/full',
    '--access-log',
    '--log-level',
    'debug',
  ]);
  t.after(() => srv.kill());
  await waitServing(srv, sock);
  await serveAll(sock, 50);
  assert.ok(processAlive(srv.pid), `server died: ${srv.stderr}`);
  assert.equal(srv.stderr, '', 'nothing reported on stderr');
});

test('cluster mode (-w 2) on a full disk: master and workers serve, a worker uncaught exception is survived', async (t) => {
  const dir = tmpDir(t);
  const sock = path.join(dir, 'app.sock');
  const srv = startNserve([
    'start',
    writeLoggingApp(dir),
    '-w',
    '2',
    '--bind',
    `unix://${sock}`,
    '--redirect-stdout',
    '/dev/full',
    '--access-log',
  ]);
  t.after(() => srv.kill());
  await waitServing(srv, sock);
  await until('two workers', () => childPids(srv.pid).length === 2);
  const before = childPids(srv.pid);
  await serveAll(sock, 50);
  // The worker that gets this logs the exception (to /dev/full) and asks to be replaced.
  assert.equal((await get(sock, '/throw')).status, 200);
  await until(
    'the failed worker replaced',
    () => {
      const now = childPids(srv.pid);
      return now.length === 2 && now.some((p) => !before.includes(p));
    },
    20000,
  );
  await serveAll(sock, 50);
  assert.ok(processAlive(srv.pid), `master died: ${srv.stderr}`);
  assert.equal(childPids(srv.pid).filter((p) => before.includes(p)).length, 1, 'exactly one worker replaced');
});

test('lines dropped on a full disk are counted and reported once writing works again', async (t) => {
  const dir = tmpDir(t);
  const sock = path.join(dir, 'app.sock');
  const logLink = path.join(dir, 'out.log');
  const realLog = path.join(dir, 'real.log');
  fs.symlinkSync('/dev/full', logLink);
  const srv = startNserve([
    'start',
    writeLoggingApp(dir),
    '--bind',
    `unix://${sock}`,
    '--redirect-stdout',
    logLink,
    '--access-log',
  ]);
  t.after(() => srv.kill());
  await waitServing(srv, sock);
  await serveAll(sock, 10);
  // "The disk has space again": the path now leads to a writable file; SIGHUP reopens it.
  fs.rmSync(logLink);
  fs.symlinkSync(realLog, logLink);
  srv.signal('SIGHUP');
  const report = await until(
    'the dropped-lines report in the log',
    async () => {
      await get(sock, '/after');
      const text = fs.existsSync(realLog) ? fs.readFileSync(realLog, 'utf8') : '';
      return text
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as Record<string, unknown>)
        .find((l) => typeof l.droppedLines === 'number');
    },
    10000,
    200,
  );
  assert.equal(report.code, 'ENOSPC');
  // The boot line and 10 access-log lines at least.
  assert.ok((report.droppedLines as number) >= 11, `droppedLines ${report.droppedLines}`);
  assert.ok(processAlive(srv.pid));
});

// ── item 4: nothing nserve writes follows a planted symlink ────────────────────────────────────────────

/** An app that takes `ms` to load: the test learns the server's PID while it boots. */
function writeSlowApp(dir: string, ms: number): string {
  const file = path.join(dir, 'slow.mjs');
  fs.writeFileSync(
    file,
    `await new Promise((r) => setTimeout(r, ${ms}));
export default function app(req, res) { res.end('ok'); }
`,
  );
  return file;
}

for (const workers of ['0', '2']) {
  test(`symlinks planted at the pidfile and state file names are never followed (-w ${workers})`, async (t) => {
    const dir = tmpDir(t);
    const sock = path.join(dir, 'app.sock');
    const pidfile = path.join(dir, 'nserve.pid');
    const state = path.join(dir, 'nserve.state');
    const victim = path.join(dir, 'victim');
    fs.writeFileSync(victim, 'precious\n');
    // The final names themselves lead to the victim: rename must replace the link, never write through it.
    fs.symlinkSync(victim, pidfile);
    fs.symlinkSync(victim, state);
    const srv = startNserve([
      'start',
      writeSlowApp(dir, 1500),
      '-w',
      workers,
      '--bind',
      `unix://${sock}`,
      '--pidfile',
      pidfile,
      '--state',
      state,
    ]);
    t.after(() => srv.kill());
    // The temp names the server used to write (FILE.PID.tmp), planted while its app loads.
    fs.symlinkSync(victim, `${pidfile}.${srv.pid}.tmp`);
    fs.symlinkSync(victim, `${state}.${srv.pid}.tmp`);
    await srv.waitForEvent('server.booted', 20000);
    await until('pidfile and state file written', () => {
      try {
        return fs.readFileSync(pidfile, 'utf8') === `${srv.pid}\n` && fs.lstatSync(state).isFile();
      } catch {
        return false;
      }
    });
    assert.equal(fs.readFileSync(victim, 'utf8'), 'precious\n', 'the victim file is unchanged');
    assert.ok(!fs.lstatSync(pidfile).isSymbolicLink(), 'the pidfile replaced the link');
    assert.ok(!fs.lstatSync(state).isSymbolicLink(), 'the state file replaced the link');
    assert.equal(fs.statSync(state).mode & 0o777, 0o600);
    // No temp file left behind (the planted links stay: they are not ours).
    const left = fs.readdirSync(dir).filter((f) => f.endsWith('.tmp') && !f.includes(String(srv.pid)));
    assert.deepEqual(left, []);
  });
}

// ── items 5 and 11: a live server's files cannot be taken over; stale ones can ─────────────────────────

async function startWithFiles(
  t: { after(fn: () => void): void },
  dir: string,
  name: string,
  extra: string[] = [],
): Promise<ServerProcess> {
  const srv = startNserve([
    'start',
    'examples/hello.mjs',
    '--bind',
    `unix://${path.join(dir, `${name}.sock`)}`,
    '--pidfile',
    path.join(dir, 'nserve.pid'),
    '--state',
    path.join(dir, 'nserve.state'),
    ...extra,
  ]);
  t.after(() => srv.kill());
  await srv.waitForEvent('server.booted', 20000);
  return srv;
}

function deadPid(): number {
  const r = spawnSync('true');
  return r.pid ?? 999999;
}

test('a second server on the same --pidfile or --state is refused (exit 2, one line); the first keeps its files', async (t) => {
  const dir = tmpDir(t);
  const first = await startWithFiles(t, dir, 'first');
  const pidfile = path.join(dir, 'nserve.pid');
  const state = path.join(dir, 'nserve.state');
  await until('state file written', () => fs.existsSync(state));
  for (const [flag, file] of [
    ['--pidfile', pidfile],
    ['--state', state],
  ] as const) {
    const second = path.join(dir, 'second.sock');
    const r = await runNserve(['start', 'examples/hello.mjs', '--bind', `unix://${second}`, flag, file]);
    assert.equal(r.code, 2, `${flag}: exit code; stderr=${r.stderr}`);
    const lines = r.stderr.trim().split('\n');
    assert.equal(lines.length, 1, r.stderr);
    assert.match(
      lines[0] ?? '',
      new RegExp(
        `^nserve: error: ${flag} .* is held by a running server \\(PID ${first.pid}\\): stop it first`,
      ),
    );
    assert.ok(!fs.existsSync(second), 'refused before binding');
  }
  assert.equal(fs.readFileSync(pidfile, 'utf8'), `${first.pid}\n`);
  assert.equal(JSON.parse(fs.readFileSync(state, 'utf8')).pid, first.pid);
  first.signal('SIGTERM');
  await first.waitExit();
  assert.ok(
    !fs.existsSync(pidfile) && !fs.existsSync(state),
    'the first server removed its own files at stop',
  );
});

test('a -w 2 cluster is refused the same way, and a hot restart keeps its own files', async (t) => {
  const dir = tmpDir(t);
  const first = await startWithFiles(t, dir, 'first', ['-w', '2']);
  const pidfile = path.join(dir, 'nserve.pid');
  const r = await runNserve([
    'start',
    'examples/hello.mjs',
    '-w',
    '2',
    '--bind',
    'tcp://127.0.0.1:0',
    '--pidfile',
    pidfile,
  ]);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /is held by a running server \(PID \d+\)/);
  // The same PID after its exec: its own files are not "another server".
  const mark = first.lines.length;
  first.signal('SIGUSR2');
  await first.waitForEvent('restart.hot.done', 30000, mark);
  assert.ok(
    !first.lines.slice(mark).some((l) => isEvent(l, 'server-file.stale', 'server-file.symlink-replaced')),
  );
  assert.equal(fs.readFileSync(pidfile, 'utf8'), `${first.pid}\n`);
});

test('stale pidfile and state file (a crashed server) are taken over with a log line', async (t) => {
  const dir = tmpDir(t);
  const pidfile = path.join(dir, 'nserve.pid');
  const state = path.join(dir, 'nserve.state');
  const dead = deadPid();
  fs.writeFileSync(pidfile, `${dead}\n`);
  fs.writeFileSync(state, JSON.stringify({ version: 1, pid: dead, startedAt: 'x', nserve: '0' }));
  const srv = await startWithFiles(t, dir, 'app');
  for (const flag of ['--pidfile', '--state'])
    await srv.waitForEvent('server-file.stale', 15_000, 0, (l) => l.flag === flag && l.pid === dead);
  assert.equal(fs.readFileSync(pidfile, 'utf8'), `${srv.pid}\n`);
  await until(
    'state file names the new server',
    () => JSON.parse(fs.readFileSync(state, 'utf8')).pid === srv.pid,
  );
});

test('a PID reused by another program does not count as a live server', async (t) => {
  const dir = tmpDir(t);
  const pidfile = path.join(dir, 'nserve.pid');
  // This test runner is alive, but it is not nserve.
  fs.writeFileSync(pidfile, `${process.pid}\n`);
  const srv = await startWithFiles(t, dir, 'app');
  await srv.waitForEvent('server-file.stale', 15_000, 0, (l) => l.flag === '--pidfile');
  assert.equal(fs.readFileSync(pidfile, 'utf8'), `${srv.pid}\n`);
});

test('a stopping server never deletes a pidfile or state file that names another server now', async (t) => {
  const dir = tmpDir(t);
  const srv = await startWithFiles(t, dir, 'app');
  const pidfile = path.join(dir, 'nserve.pid');
  const state = path.join(dir, 'nserve.state');
  await until('state file written', () => fs.existsSync(state));
  // Another server took the files over meanwhile (as an operator's restart script might).
  fs.writeFileSync(pidfile, '4242\n');
  fs.writeFileSync(state, JSON.stringify({ version: 1, pid: 4242, startedAt: 'x', nserve: '0' }));
  srv.signal('SIGTERM');
  assert.equal((await srv.waitExit()).code, 0);
  assert.equal(fs.readFileSync(pidfile, 'utf8'), '4242\n');
  assert.equal(JSON.parse(fs.readFileSync(state, 'utf8')).pid, 4242);
});

test('a pidfile in a missing directory is refused before binding (exit 2, one line, no socket file left)', async (t) => {
  const dir = tmpDir(t);
  const sock = path.join(dir, 'app.sock');
  for (const workers of ['0', '2']) {
    const r = await runNserve([
      'start',
      'examples/hello.mjs',
      '-w',
      workers,
      '--bind',
      `unix://${sock}`,
      '--pidfile',
      path.join(dir, 'missing', 'nserve.pid'),
    ]);
    assert.equal(r.code, 2, r.stderr);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.match(
      r.stderr,
      /^nserve: error: invalid --pidfile .*missing\/nserve\.pid: cannot write in .*missing \(ENOENT\): it must name a file in an existing, writable directory\n$/,
    );
    assert.ok(!fs.existsSync(sock), 'no socket file left');
  }
});

// ── a --pidfile or --state that is not nserve's is never replaced (nor deleted at stop) ─────────────────

/** What each refusal looks like: the flags, the file that must survive as it was, the message. */
function notOursCases(dir: string): { name: string; args: string[]; keep: string; message: RegExp }[] {
  const data = path.join(dir, 'data.txt');
  const db = path.join(dir, 'db.json');
  const pidLike = path.join(dir, 'pid-like.json');
  const log = path.join(dir, 'out.log');
  const shared = path.join(dir, 'shared');
  const notRegular =
    /: it is a (directory|FIFO|socket), not a regular file: name a file in an existing, writable directory$/;
  const notOurs = (flag: string, file: string, kind: string): RegExp =>
    new RegExp(
      `^nserve: error: invalid ${flag} ${file}: it exists and is not ${kind}: refusing to overwrite it; remove it or name another file$`,
    );
  return [
    {
      name: '--pidfile on a data file',
      args: ['--pidfile', data],
      keep: data,
      message: notOurs('--pidfile', data, 'a pidfile \\(no PID in it\\)'),
    },
    {
      name: '--state on a JSON database',
      args: ['--state', db],
      keep: db,
      message: notOurs('--state', db, 'an nserve state file'),
    },
    {
      name: '--state on JSON that has a pid but is not a state file',
      args: ['--state', pidLike],
      keep: pidLike,
      message: notOurs('--state', pidLike, 'an nserve state file'),
    },
    {
      name: '--pidfile on the --redirect-stdout log',
      args: ['--pidfile', log, '--redirect-stdout', log],
      keep: log,
      message: new RegExp(
        `^nserve: error: invalid --pidfile ${log}: it is the same file as --redirect-stdout ${log}: `,
      ),
    },
    {
      name: '--state on the --redirect-stderr log',
      args: ['--state', log, '--redirect-stderr', log],
      keep: log,
      message: new RegExp(
        `^nserve: error: invalid --state ${log}: it is the same file as --redirect-stderr ${log}: `,
      ),
    },
    {
      name: '--pidfile and --state on one file',
      args: ['--pidfile', shared, '--state', shared],
      keep: shared,
      message: new RegExp(
        `^nserve: error: invalid --pidfile ${shared}: it is the same file as --state ${shared}: `,
      ),
    },
    { name: '--pidfile on a directory', args: ['--pidfile', dir], keep: data, message: notRegular },
    {
      name: '--state on a directory',
      args: ['--state', path.join(dir, 'subdir')],
      keep: data,
      message: notRegular,
    },
    {
      name: '--pidfile on a FIFO',
      args: ['--pidfile', path.join(dir, 'fifo')],
      keep: data,
      message: notRegular,
    },
    { name: '--state on a FIFO', args: ['--state', path.join(dir, 'fifo')], keep: data, message: notRegular },
  ];
}

for (const workers of ['0', '2']) {
  test(`a --pidfile or --state that is not nserve's, or not a regular file, is refused before binding (-w ${workers})`, async (t) => {
    const dir = tmpDir(t);
    const sock = path.join(dir, 'app.sock');
    const contents: Record<string, string> = {
      'data.txt': 'DATA\n',
      'db.json': '{"users":[1,2,3]}\n',
      'pid-like.json': `{"pid":${process.pid}}\n`,
      'out.log': 'yesterday\n',
      shared: '',
    };
    for (const [name, text] of Object.entries(contents)) fs.writeFileSync(path.join(dir, name), text);
    fs.mkdirSync(path.join(dir, 'subdir'));
    assert.equal(spawnSync('mkfifo', [path.join(dir, 'fifo')]).status, 0, 'mkfifo');
    for (const c of notOursCases(dir)) {
      const r = await runNserve([
        'start',
        'examples/hello.mjs',
        '-w',
        workers,
        '--bind',
        `unix://${sock}`,
        ...c.args,
      ]);
      assert.equal(r.code, 2, `${c.name}: exit code; stderr=${r.stderr}`);
      const lines = r.stderr.trim().split('\n');
      assert.equal(lines.length, 1, `${c.name}: one line: ${r.stderr}`);
      assert.match(lines[0] ?? '', c.message, c.name);
      assert.ok(!fs.existsSync(sock), `${c.name}: refused before binding`);
      assert.equal(
        fs.readFileSync(c.keep, 'utf8'),
        contents[path.basename(c.keep)],
        `${c.name}: ${c.keep} unchanged`,
      );
    }
    assert.ok(fs.statSync(path.join(dir, 'subdir')).isDirectory());
    assert.ok(fs.lstatSync(path.join(dir, 'fifo')).isFIFO());
  });
}

test('an empty --pidfile and --state are taken over, and removed at stop', async (t) => {
  const dir = tmpDir(t);
  const pidfile = path.join(dir, 'nserve.pid');
  const state = path.join(dir, 'nserve.state');
  fs.writeFileSync(pidfile, '');
  fs.writeFileSync(state, '');
  const srv = await startWithFiles(t, dir, 'app');
  assert.equal(fs.readFileSync(pidfile, 'utf8'), `${srv.pid}\n`);
  await until('state file written', () => fs.statSync(state).size > 0);
  srv.signal('SIGTERM');
  assert.equal((await srv.waitExit()).code, 0);
  assert.ok(!fs.existsSync(pidfile) && !fs.existsSync(state));
});
