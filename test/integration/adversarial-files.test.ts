// The files nserve writes, probed as an unlucky operator or a hostile local user would: a full disk under
// the log files, symlinks planted at the names nserve writes, a second server on the same pidfile or state
// file, a pidfile in a directory that does not exist.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import { after, test } from 'node:test';
import {
  childPids,
  killAll,
  processAlive,
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
  const dir = tmpDir();
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
  const dir = tmpDir();
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
  const dir = tmpDir();
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
