// The dashboard in a real browser: Debian's headless Chromium, driven with playwright-core, opens the URL
// `nserve ctl dashboard` prints for a `-w 2` server, sees both workers' PIDs, and after a SIGUSR2 sees the
// new PIDs and the restart in the timeline within 5 s, without a reload. Every request the page makes
// stays on 127.0.0.1, and the page's content security policy blocks nothing of its own. A screenshot is
// saved in test-output/dashboard/ (and, with NSERVE_UPDATE_SCREENSHOT=1, copied to docs/dashboard.png).
//
// Part of `npm run test:tools` (.ci/run installs chromium first), not `npm test`: it needs a browser.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import { type Browser, chromium } from 'playwright-core';
import { loginUrl, startWithDashboard } from '../helpers/dashboard.js';
import { childPids, killAll, ROOT, replacedWorkers, until } from '../helpers/server.js';

after(killAll);

/** Debian's chromium package: /usr/bin/chromium is a wrapper script around this binary. */
const CHROMIUM = ['/usr/lib/chromium/chromium', '/usr/bin/chromium'].find((p) => fs.existsSync(p));
const OUTPUT = path.join(ROOT, 'test-output', 'dashboard');

let browser: Browser | undefined;

/** The little of the DOM these checks use (this file is compiled without the DOM's types). */
interface Doc {
  querySelectorAll(selector: string): ArrayLike<{ getAttribute(name: string): string | null }>;
  querySelector(selector: string): unknown;
}

before(() => {
  assert.ok(
    CHROMIUM !== undefined,
    'chromium not found: apt-get install --no-install-recommends chromium (Debian), as .ci/run does',
  );
});

after(async () => {
  await browser?.close();
});

test('-w 2: the page shows both workers, then a hot restart live (new PIDs, the restart in the timeline)', {
  timeout: 120_000,
}, async (t) => {
  const { srv, state, base } = await startWithDashboard(t, 2);
  const appPort = await srv.port();
  const oldPids = await until('2 workers', () => {
    const p = childPids(srv.pid);
    return p.length === 2 ? p : undefined;
  });
  // A little traffic, so the request-rate chart has something to draw.
  const traffic = setInterval(() => {
    http
      .get({ host: '127.0.0.1', port: appPort, path: '/', agent: false }, (r) => r.resume())
      .on('error', () => {});
  }, 25);
  t.after(() => clearInterval(traffic));

  // --no-sandbox: the tests run as root, where Chromium's sandbox refuses to start.
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox'] });
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const requests: string[] = [];
  const cspErrors: string[] = [];
  page.on('request', (r) => requests.push(r.url()));
  page.on('console', (m) => {
    if (m.type() === 'error' && /Content Security Policy/i.test(m.text())) cspErrors.push(m.text());
  });
  await page.goto(await loginUrl(state));
  assert.equal(new URL(page.url()).pathname, '/dashboard/');
  // These functions run in the page (Playwright sends their source; the page's CSP forbids string eval).
  const shown = (): number[] =>
    Array.from((globalThis as unknown as { document: Doc }).document.querySelectorAll('tr[data-pid]'), (r) =>
      Number(r.getAttribute('data-pid')),
    );
  await page.waitForFunction(
    () => (globalThis as unknown as { document: Doc }).document.querySelectorAll('tr[data-pid]').length === 2,
    undefined,
    { timeout: 10_000 },
  );
  assert.deepEqual((await page.evaluate(shown)).sort(), [...oldPids].sort());
  // A mark in the page's JS world: a reload would lose it.
  await page.evaluate(() => {
    (globalThis as unknown as { mark: number }).mark = 42;
  });
  await page.waitForTimeout(3000); // a few points on the rate chart
  // The traffic's latency: a line in its chart, and the mean in milliseconds.
  assert.ok((await page.locator('#latencyChart path').count()) === 1, 'the latency chart draws a line');
  assert.match(String(await page.locator('#latency').textContent()), /^\d+(\.\d)? ms/);

  const signalled = Date.now();
  srv.signal('SIGUSR2');
  const newPids = await replacedWorkers(srv.pid, oldPids, 2, 20_000);
  await page.waitForFunction(
    (want) => {
      const doc = (globalThis as unknown as { document: Doc }).document;
      const pids = Array.from(doc.querySelectorAll('tr[data-pid]'), (r) =>
        Number(r.getAttribute('data-pid')),
      );
      return (
        pids.length === want.length &&
        want.every((p) => pids.includes(p)) &&
        doc.querySelector('g.restart.ok[data-restart-id="1"]') !== null
      );
    },
    newPids,
    { timeout: Math.max(1000, 5000 - (Date.now() - signalled)) },
  );
  const seenMs = Date.now() - signalled;
  t.diagnostic(`new PIDs and the restart shown ${seenMs} ms after SIGUSR2`);
  assert.ok(seenMs <= 5000, `the page showed the restart ${seenMs} ms after the signal`);
  assert.equal(await page.evaluate('window.mark'), 42, 'the page reloaded');
  assert.equal(await page.locator('#status').textContent(), 'live');

  fs.mkdirSync(OUTPUT, { recursive: true });
  const shot = path.join(OUTPUT, 'dashboard.png');
  await page.waitForTimeout(4000); // the charts run on through the restart
  await page.screenshot({ path: shot, fullPage: true });
  t.diagnostic(`screenshot: ${shot}`);
  if (process.env.NSERVE_UPDATE_SCREENSHOT === '1')
    fs.copyFileSync(shot, path.join(ROOT, 'docs', 'dashboard.png'));

  const foreign = requests.filter((u) => !u.startsWith(`${base}/`));
  assert.deepEqual(foreign, [], 'requests that left the control server');
  assert.ok(requests.filter((u) => u.endsWith('/dashboard/view')).length > 3, 'the page did not poll');
  assert.deepEqual(cspErrors, []);
});
