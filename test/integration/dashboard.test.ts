// The dashboard page on a TCP control server: what it refuses (no login, a wrong or expired token, a
// login URL used twice, cross-site requests, any method but GET), the headers that forbid framing and
// foreign content, a session that outlives a hot restart, and `ctl dashboard` on a unix socket.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, test } from 'node:test';
import { makeLoginToken, makeSession } from '../../src/dashboard/token.js';
import { ctl } from '../helpers/control.js';
import { DASHBOARD_TOKEN, get, login, loginUrl, startWithDashboard } from '../helpers/dashboard.js';
import { restart } from '../helpers/restart.js';
import { killAll, startNserve, tmpDir } from '../helpers/server.js';

after(killAll);

function assertFramingRefused(headers: Record<string, unknown>, where: string): void {
  const csp = String(headers['content-security-policy']);
  assert.match(csp, /(^|; )default-src 'none'(;|$)/, `${where}: ${csp}`);
  assert.match(csp, /(^|; )frame-ancestors 'none'(;|$)/, `${where}: ${csp}`);
  assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval|\*/, `${where}: ${csp}`);
  assert.equal(headers['x-frame-options'], 'DENY', where);
  assert.equal(headers['x-content-type-options'], 'nosniff', where);
}

test('the dashboard refuses no login, wrong tokens, expired and reused login URLs, cross-site requests and writes', {
  timeout: 60_000,
}, async (t) => {
  const { base, state } = await startWithDashboard(t);
  // No credentials at all: the page, its data, and the path without a slash's target.
  for (const p of ['/dashboard/', '/dashboard/view']) {
    const r = await get(`${base}${p}`);
    assert.equal(r.status, 403, `${p}: ${r.text}`);
    assert.match(r.text, /nserve ctl dashboard/);
    assertFramingRefused(r.headers, `${p} without login`);
  }
  // A wrong control token as a bearer; a session and a login token made with another control token.
  assert.equal((await get(`${base}/dashboard/view`, { authorization: 'Bearer not-the-token' })).status, 403);
  const forgedSession = makeSession('not-the-token', Date.now()).value;
  assert.equal(
    (await get(`${base}/dashboard/`, { cookie: `nserve_dashboard=${forgedSession}` })).status,
    403,
  );
  const forgedLogin = await get(`${base}/dashboard/login?t=${makeLoginToken('not-the-token', Date.now())}`);
  assert.equal(forgedLogin.status, 403);
  assert.equal(forgedLogin.headers['set-cookie'], undefined);
  // A login token made with the right control token, but 3 minutes ago: expired.
  const expired = await get(
    `${base}/dashboard/login?t=${makeLoginToken(DASHBOARD_TOKEN, Date.now() - 180_000)}`,
  );
  assert.equal(expired.status, 403);
  assert.match(expired.text, /expired login token/);
  assert.equal(expired.headers['set-cookie'], undefined);

  // The URL `ctl dashboard` prints logs in once, with an HttpOnly SameSite=Strict cookie.
  const url = await loginUrl(state);
  assert.match(url, /^http:\/\/127\.0\.0\.1:\d+\/dashboard\/login\?t=l1\./);
  assert.doesNotMatch(url, new RegExp(DASHBOARD_TOKEN), 'the control token itself is in the URL');
  const first = await get(url);
  assert.equal(first.status, 303);
  const setCookie = String(first.headers['set-cookie']);
  assert.match(setCookie, /HttpOnly/);
  assert.match(setCookie, /SameSite=Strict/);
  assert.match(setCookie, /Path=\/dashboard/);
  const again = await get(url);
  assert.equal(again.status, 403, 'a login URL worked twice');
  const cookie = setCookie.split(';')[0]!;

  const page = await get(`${base}/dashboard/`, { cookie, 'sec-fetch-site': 'none' });
  assert.equal(page.status, 200);
  assert.match(String(page.headers['content-type']), /^text\/html/);
  assertFramingRefused(page.headers, 'the page');
  assert.ok(page.text.length < 60_000, `the page is ${page.text.length} bytes`);
  const view = await get(`${base}/dashboard/view`, { cookie, 'sec-fetch-site': 'same-origin' });
  assert.equal(view.status, 200);
  assert.equal(JSON.parse(view.text).server.mode, 'single');

  // Cross-site, with a valid session: refused, by Sec-Fetch-Site or by Origin.
  for (const headers of [
    { cookie, 'sec-fetch-site': 'cross-site' },
    { cookie, 'sec-fetch-site': 'same-site' },
    { cookie, origin: 'http://evil.example' },
  ]) {
    const r = await get(`${base}/dashboard/view`, headers);
    assert.equal(r.status, 403, JSON.stringify(headers));
    assert.match(r.text, /cross-site/);
    assertFramingRefused(r.headers, 'a cross-site refusal');
  }
  // Read-only: nothing but GET and HEAD, even logged in.
  for (const method of ['POST', 'PUT', 'DELETE']) {
    const r = await get(`${base}/dashboard/view`, { cookie }, method);
    assert.equal(r.status, 405, method);
  }
  // The control API itself does not take the dashboard's cookie.
  assert.equal((await get(`${base}/stats`, { cookie })).status, 403);
});

test('the session cookie still works after a hot restart (it derives from the control token)', {
  timeout: 60_000,
}, async (t) => {
  const { srv, base, state } = await startWithDashboard(t);
  const cookie = await login(await loginUrl(state));
  const before = JSON.parse((await get(`${base}/dashboard/view`, { cookie })).text);
  await restart(srv, 'hot');
  const after = await get(`${base}/dashboard/view`, { cookie });
  assert.equal(after.status, 200, after.text);
  const view = JSON.parse(after.text);
  assert.equal(view.server.pid, before.server.pid);
  assert.equal(view.restarts.at(-1).outcome, 'ok');
});

test('ctl dashboard with a unix-socket control server says in one line what to configure', {
  timeout: 30_000,
}, async (t) => {
  const dir = tmpDir(t);
  const state = path.join(dir, 'state.json');
  const srv = startNserve([
    'start',
    'examples/hello.mjs',
    '--bind',
    'tcp://127.0.0.1:0',
    '--control-url',
    `unix://${path.join(dir, 'ctl.sock')}`,
    '--state',
    state,
  ]);
  t.after(() => srv.kill());
  await srv.waitForEvent('control.server.listening');
  const r = await ctl(['dashboard', '-S', state]);
  assert.equal(r.code, 2);
  assert.equal(r.stdout, '');
  assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  assert.match(
    r.stderr,
    /needs a TCP control server .*--control-url tcp:\/\/127\.0\.0\.1:PORT --control-token TOKEN/,
  );
});

test('a dashboard poll while the server is out of descriptors answers 500 and the server serves on', {
  timeout: 60_000,
}, async (t) => {
  const { srv, base } = await startWithDashboard(t);
  const auth = { authorization: `Bearer ${DASHBOARD_TOKEN}` };
  assert.equal((await get(`${base}/dashboard/view`, auth)).status, 200);
  // One descriptor left: the poll's connection takes it, and reading /proc/self/fd for the view fails
  // with EMFILE (stats throws), as on a server that leaks descriptors.
  await new Promise((r) => setTimeout(r, 300)); // the first poll's connection closed
  const open = fs.readdirSync(`/proc/${srv.pid}/fd`).length;
  const soft = /^Max open files\s+(\d+)/m.exec(fs.readFileSync(`/proc/${srv.pid}/limits`, 'utf8'))?.[1];
  // The soft limit only (`N:`): raising it back needs no privilege.
  execFileSync('prlimit', ['--pid', String(srv.pid), `--nofile=${open + 1}:`]);
  const starved = await get(`${base}/dashboard/view`, auth).catch((err: unknown) => ({
    status: 0,
    text: String(err),
  }));
  execFileSync('prlimit', ['--pid', String(srv.pid), `--nofile=${soft}:`]);
  assert.equal(starved.status, 500, starved.text);
  assert.match(starved.text, /ERR_NSERVE_CONTROL_INTERNAL/);
  assert.equal(srv.exitStatus, undefined, 'the server still runs');
  assert.equal((await get(`${base}/dashboard/view`, auth)).status, 200, 'and answers again');
});
