// A server with a TCP control server on a fixed port (port 0 would change at every hot restart, and the
// page would lose it), the login URL from `nserve ctl dashboard`, and plain HTTP requests to the page.
import * as http from 'node:http';
import * as path from 'node:path';
import { ctl } from './control.js';
import { type Cleanup, freePort, type ServerProcess, startNserve, tmpDir } from './server.js';

export const DASHBOARD_TOKEN = 'dashboard-control-token-5678';

export interface DashboardServer {
  srv: ServerProcess;
  state: string;
  /** http://127.0.0.1:PORT */
  base: string;
}

export async function startWithDashboard(t: Cleanup, workers = 0): Promise<DashboardServer> {
  const state = path.join(tmpDir(t), 'state.json');
  const port = await freePort();
  const srv = startNserve([
    'start',
    'examples/hello.mjs',
    '-w',
    String(workers),
    '--bind',
    'tcp://127.0.0.1:0',
    '--control-url',
    `tcp://127.0.0.1:${port}`,
    '--control-token',
    DASHBOARD_TOKEN,
    '--state',
    state,
  ]);
  t.after(() => srv.kill());
  await srv.waitForEvent('control.server.listening', 20_000);
  return { srv, state, base: `http://127.0.0.1:${port}` };
}

/** `nserve ctl dashboard -S STATE`: the login URL it prints. */
export async function loginUrl(state: string): Promise<string> {
  const r = await ctl(['dashboard', '-S', state]);
  if (r.code !== 0) throw new Error(`nserve ctl dashboard failed (${r.code}): ${r.stderr}`);
  return r.stdout.trim();
}

export interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
}

export function get(url: string, headers: http.OutgoingHttpHeaders = {}, method = 'GET'): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, headers, agent: false, timeout: 10_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          text: Buffer.concat(chunks).toString('utf8'),
        }),
      );
    });
    req.on('timeout', () => req.destroy(new Error(`no answer to ${method} ${url} within 10 s`)));
    req.on('error', reject);
    req.end();
  });
}

/** Log in with a login URL: the session cookie (`name=value`) it sets. */
export async function login(url: string): Promise<string> {
  const r = await get(url);
  const cookie = r.headers['set-cookie']?.[0];
  if (r.status !== 303 || cookie === undefined) throw new Error(`login failed: ${r.status} ${r.text}`);
  return cookie.split(';')[0]!;
}
