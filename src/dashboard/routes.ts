// The dashboard's routes on the control server (control/server.ts hands it every path under /dashboard):
//   GET /dashboard/           the page (TCP control servers only: a browser cannot open a unix socket)
//   GET /dashboard/login?t=T  a login token from `nserve ctl dashboard`: sets the session cookie, once
//   GET /dashboard/view       the view model as JSON (the page polls it; `nserve top` reads it too)
// Read-only: nothing here acts on the server, and every other method is refused. Every answer carries a
// strict content security policy and refuses to be framed; cross-site requests are refused before
// anything else (the cookie is SameSite=Strict as well, for browsers that send no Sec-Fetch-Site).
import type * as http from 'node:http';
import { tokenMatches } from '../control/answers.js';
import type { Stats } from '../control/status.js';
import { logEvent } from '../log/events.js';
import type { Logger } from '../log/logger.js';
import * as native from '../native/index.js';
import { PAGE_CSP, PAGE_HTML } from './page.js';
import { DASHBOARD_PATH } from './paths.js';
import { checkLoginToken, checkSession, makeSession, UsedLogins } from './token.js';
import { type QueueRow, Samples } from './view.js';

export { DASHBOARD_PATH, isDashboardPath } from './paths.js';
export const COOKIE = 'nserve_dashboard';

/** Headers on every dashboard answer, errors included. */
export const SECURITY_HEADERS: Readonly<Record<string, string>> = Object.freeze({
  'content-security-policy': PAGE_CSP,
  'x-frame-options': 'DENY',
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
  'cache-control': 'no-store',
});

export interface DashboardOptions {
  /** The control token (always set for TCP; optional for a unix socket, whose mode limits who connects). */
  token: string | undefined;
  /** The page is served on TCP only. */
  tcp: boolean;
  log: Logger;
}

function answer(
  res: http.ServerResponse,
  status: number,
  body: string,
  type: string,
  extra: Record<string, string> = {},
): void {
  res.writeHead(status, {
    ...SECURITY_HEADERS,
    ...extra,
    'content-type': type,
    'content-length': Buffer.byteLength(body),
    connection: 'close',
  });
  res.end(body);
}

function error(res: http.ServerResponse, status: number, message: string, code: string, extra = {}): void {
  answer(
    res,
    status,
    `${JSON.stringify({ error: message, code })}\n`,
    'application/json; charset=utf-8',
    extra,
  );
}

/**
 * Why a request is cross-site, or undefined. Browsers say where a request comes from in Sec-Fetch-Site
 * (`none`: typed or opened from outside a page); older ones only in Origin, on requests that are not
 * plain navigations. Non-browser clients (curl, `nserve top`) send neither.
 */
export function crossSite(req: http.IncomingMessage): string | undefined {
  const site = req.headers['sec-fetch-site'];
  if (site !== undefined && site !== 'same-origin' && site !== 'none') return `Sec-Fetch-Site: ${site}`;
  const origin = req.headers.origin;
  if (origin !== undefined && origin !== `http://${req.headers.host ?? ''}`) return 'Origin';
  return undefined;
}

function cookieValue(req: http.IncomingMessage): string | undefined {
  const header = req.headers.cookie;
  if (header === undefined) return undefined;
  for (const part of header.split(';')) {
    const [k, ...v] = part.trim().split('=');
    if (k === COOKIE) return v.join('=');
  }
  return undefined;
}

function bearer(req: http.IncomingMessage): string | undefined {
  const h = req.headers.authorization;
  return h === undefined ? undefined : (/^Bearer +(\S+) *$/i.exec(h)?.[1] ?? '');
}

export class Dashboard {
  private readonly samples = new Samples();
  private readonly used = new UsedLogins();

  constructor(private readonly options: DashboardOptions) {}

  /** Authorised by the session cookie, or by the control token (for clients other than the page). */
  private authorised(req: http.IncomingMessage, now: number): boolean {
    const { token } = this.options;
    if (token === undefined) return true;
    const given = bearer(req);
    if (given !== undefined) return tokenMatches(token, given);
    const cookie = cookieValue(req);
    return cookie !== undefined && checkSession(token, cookie, now).ok;
  }

  handle(req: http.IncomingMessage, res: http.ServerResponse, url: URL, stats: () => Stats): void {
    req.resume();
    const why = crossSite(req);
    if (why !== undefined) {
      error(res, 403, `cross-site request refused (${why})`, 'ERR_NSERVE_DASHBOARD_CROSS_SITE');
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      error(res, 405, `the dashboard is read-only: ${req.method} is refused`, 'ERR_NSERVE_CONTROL_METHOD', {
        allow: 'GET, HEAD',
      });
      return;
    }
    const now = Date.now();
    if (url.pathname === DASHBOARD_PATH) {
      // The page fetches `view` relative to itself: it must be served as a folder.
      answer(res, 308, '', 'text/plain', { location: `${DASHBOARD_PATH}/` });
      return;
    }
    const page = url.pathname === `${DASHBOARD_PATH}/`;
    if (!this.options.tcp && url.pathname !== `${DASHBOARD_PATH}/view`) {
      error(
        res,
        404,
        'the dashboard page needs a TCP control server (--control-url tcp://127.0.0.1:PORT --control-token TOKEN)',
        'ERR_NSERVE_DASHBOARD_UNIX',
      );
      return;
    }
    if (url.pathname === `${DASHBOARD_PATH}/login`) {
      this.login(res, url, now);
      return;
    }
    if (!page && url.pathname !== `${DASHBOARD_PATH}/view`) {
      error(res, 404, `no such dashboard path: ${url.pathname}`, 'ERR_NSERVE_CONTROL_NOT_FOUND');
      return;
    }
    if (!this.authorised(req, now)) {
      error(
        res,
        403,
        'not logged in: run `nserve ctl dashboard` for a login URL',
        'ERR_NSERVE_CONTROL_TOKEN',
      );
      return;
    }
    if (page) {
      answer(res, 200, PAGE_HTML, 'text/html; charset=utf-8');
      return;
    }
    const s = stats();
    const view = this.samples.view(s, now, readQueues(s));
    answer(res, 200, `${JSON.stringify(view)}\n`, 'application/json; charset=utf-8');
  }

  private login(res: http.ServerResponse, url: URL, now: number): void {
    const token = this.options.token;
    const given = url.searchParams.get('t');
    if (token === undefined) {
      answer(res, 303, '', 'text/plain', { location: `${DASHBOARD_PATH}/` });
      return;
    }
    const check = given === null ? undefined : checkLoginToken(token, given, now);
    if (check === undefined || !check.ok) {
      const reason = check === undefined ? 'no login token' : `${check.reason} login token`;
      error(
        res,
        403,
        `${reason}: run \`nserve ctl dashboard\` for a new login URL`,
        'ERR_NSERVE_DASHBOARD_LOGIN',
      );
      return;
    }
    if (!this.used.claim(given!, check.expiry, now)) {
      error(
        res,
        403,
        'this login URL was used already: run `nserve ctl dashboard` for a new one',
        'ERR_NSERVE_DASHBOARD_LOGIN',
      );
      return;
    }
    const session = makeSession(token, now);
    logEvent(this.options.log, 'dashboard.login', 'dashboard: logged in with a login URL');
    answer(res, 303, '', 'text/plain', {
      location: `${DASHBOARD_PATH}/`,
      'set-cookie': `${COOKIE}=${session.value}; Path=${DASHBOARD_PATH}; Max-Age=${session.maxAgeS}; HttpOnly; SameSite=Strict`,
    });
  }
}

/** The accept queue of each listening socket (one getsockopt each); null without the addon. */
function readQueues(stats: Stats): QueueRow[] | null {
  if (!native.available) return null;
  const rows: QueueRow[] = [];
  for (const l of stats.listeners) {
    try {
      // null: not a listening TCP socket (a unix socket)
      const q = native.listenQueue(l.fd);
      if (q !== null) rows.push({ bind: l.uri, slot: l.slot, depth: q.depth, limit: q.limit });
    } catch {
      // closed meanwhile
    }
  }
  return rows;
}
