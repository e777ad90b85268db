// `nserve ctl dashboard`: the dashboard's login URL (dashboard/token.ts), made here from the control
// token the state file (or --control-token) gives, after checking that the server takes that token.
import { spawn } from 'node:child_process';
import { formatControlUrl } from '../control/api.js';
import { call } from '../control/client.js';
import { DASHBOARD_PATH } from '../dashboard/paths.js';
import { LOGIN_TTL_MS, makeLoginToken } from '../dashboard/token.js';
import { usageError } from '../errors.js';
import type { Connection } from './ctl-connect.js';

const CONFIGURE =
  'start nserve with --control-url tcp://127.0.0.1:PORT --control-token TOKEN (and --state FILE, then nserve ctl dashboard -S FILE)';

/** The login URL of the dashboard of the server `conn` reaches. */
export async function dashboardLoginUrl(conn: Connection, requestMs: number): Promise<string> {
  if (conn.kind === 'signals')
    throw usageError('ERR_NSERVE_USAGE', `the dashboard needs a TCP control server: ${CONFIGURE}`);
  const { address, token } = conn.target;
  if (address.kind === 'unix')
    throw usageError(
      'ERR_NSERVE_USAGE',
      `the dashboard needs a TCP control server (a browser cannot open ${formatControlUrl(address)}): ${CONFIGURE}`,
    );
  if (token === undefined)
    throw usageError('ERR_NSERVE_USAGE', `the dashboard needs the control token: give --control-token`);
  // A URL made with a wrong token would be refused in the browser: be refused here instead, in one line.
  await call(conn.target, 'GET', '/stats', requestMs);
  // A wildcard bind answers on loopback too; a browser cannot connect to 0.0.0.0 everywhere.
  const host =
    address.host === '0.0.0.0'
      ? '127.0.0.1'
      : address.host === '::'
        ? '[::1]'
        : address.family === 'tcp6'
          ? `[${address.host}]`
          : address.host;
  return `http://${host}:${address.port}${DASHBOARD_PATH}/login?t=${makeLoginToken(token, Date.now())}`;
}

export const LOGIN_NOTE = `logs in once, within ${LOGIN_TTL_MS / 60_000} minutes; the session cookie lasts 12 hours and survives restarts`;

/** `--open`: hand the URL to the desktop's browser; a machine without one says so in one line. */
export function openInBrowser(url: string): void {
  const child = spawn('xdg-open', [url], { stdio: 'ignore', detached: true });
  child.on('error', (err: NodeJS.ErrnoException) => {
    process.stderr.write(
      `nserve: cannot open a browser (xdg-open: ${err.code ?? err.message}): open the URL above yourself\n`,
    );
  });
  child.unref();
}
