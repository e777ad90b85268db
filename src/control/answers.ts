// The answers of the control API: who may ask (the token), which route, and what each action gets.
// The server (control/server.ts) owns the socket, the connections and their limits; it asks here.
import type * as http from 'node:http';
import { errorMessage } from '../errors.js';
import { logEvent } from '../log/events.js';
import type { Logger } from '../log/logger.js';
import { parseRestartKind, type Route, routeFor } from './endpoints.js';
import type { ActionOptions, ControlAnswer, Controller } from './status.js';

/** Compare a presented token with the expected one in constant time (hashes: equal lengths, no length leak). */
export function tokenMatches(expected: string, given: string | undefined): boolean {
  // node:crypto through getBuiltinModule, not an ES import, which reads every export: webcrypto's lazy
  // getters would load ~40 more of Node's own modules into the master.
  const { createHash, timingSafeEqual } = process.getBuiltinModule('node:crypto');
  if (given === undefined) return false;
  const a = createHash('sha256').update(expected).digest();
  const b = createHash('sha256').update(given).digest();
  return timingSafeEqual(a, b);
}

/** The token a request presents: `Authorization: Bearer T`, else `?token=T`. */
export function presentedToken(req: http.IncomingMessage, url: URL): string | undefined {
  const header = req.headers.authorization;
  if (header !== undefined) return /^Bearer +(\S+) *$/i.exec(header)?.[1] ?? '';
  return url.searchParams.get('token') ?? undefined;
}

export interface Reply {
  status: number;
  body: unknown;
  headers?: Record<string, string>;
  /** Runs once the answer has been sent. */
  afterSent?: () => void;
}

export function send(res: http.ServerResponse, reply: Reply): void {
  const text = `${JSON.stringify(reply.body, null, 2)}\n`;
  res.writeHead(reply.status, {
    ...reply.headers,
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
    connection: 'close',
  });
  res.end(text);
}

export function refused(reason: string, status = 409): Reply {
  return { status, body: { accepted: false, error: reason, code: 'ERR_NSERVE_CONTROL_REFUSED' } };
}

export function badRequest(error: string): Reply {
  return { status: 400, body: { error, code: 'ERR_NSERVE_CONTROL_BAD_REQUEST' } };
}

/** Token, path and method, before the body is read. */
export function checkRequest(
  req: http.IncomingMessage,
  url: URL,
  { log, token }: { log: Logger; token: string | undefined },
): Reply | undefined {
  if (token !== undefined) {
    const given = presentedToken(req, url);
    if (!tokenMatches(token, given)) {
      const reason = given === undefined ? 'no token' : 'wrong token';
      // The path only: the query may carry the (wrong) token.
      logEvent(
        log,
        'control.auth.refused',
        {
          method: req.method,
          path: url.pathname,
          remote: req.socket.remoteAddress ?? 'unix socket',
          reason,
        },
        `control: ${req.method} ${url.pathname} refused: ${reason}`,
      );
      return {
        status: 403,
        body: { error: 'missing or wrong control token', code: 'ERR_NSERVE_CONTROL_TOKEN' },
      };
    }
  }
  const route = routeFor(url.pathname);
  if (route === undefined) {
    return {
      status: 404,
      body: { error: `no such control path: ${url.pathname}`, code: 'ERR_NSERVE_CONTROL_NOT_FOUND' },
    };
  }
  if (req.method !== route.method) {
    return {
      status: 405,
      headers: { allow: route.method },
      body: {
        error: `${url.pathname} takes ${route.method}, not ${req.method}`,
        code: 'ERR_NSERVE_CONTROL_METHOD',
      },
    };
  }
  return undefined;
}

/**
 * The answer to one authenticated request. Long on purpose: one branch per kind of route (reads, stop and
 * halt answered before they act, reload-certs with its verdict, the other actions), in the order a reader
 * checks them against docs/control.md.
 */
export function answerRoute(
  controller: Controller,
  log: Logger,
  route: Route,
  url: URL,
): Reply | Promise<Reply> {
  try {
    if (route.method === 'GET') {
      if (route.read === 'stats') return { status: 200, body: controller.stats() };
      // (/metrics is answered by sendMetrics)
      if (controller.fds === undefined) {
        return {
          status: 501,
          body: {
            error: 'this server cannot list its descriptors',
            code: 'ERR_NSERVE_CONTROL_UNSUPPORTED',
          },
        };
      }
      return { status: 200, body: controller.fds() };
    }
    const action = route.action;
    if (action === 'stop' || action === 'halt') {
      // A stop may end the process before this answer is written: answer first, act once it is sent.
      const no = controller.refuses(action);
      if (no !== undefined) return refused(no);
      logEvent(log, 'control.action.requested', { path: url.pathname }, `control: ${action} requested`);
      return {
        status: 202,
        body: { accepted: true, action, pid: process.pid },
        afterSent: () => {
          const answer = controller.perform(action);
          if (!answer.accepted)
            logEvent(log, 'control.action.refused', `control: ${action} refused: ${answer.reason}`);
        },
      };
    }
    if (action === 'reload-certs' && controller.reloadCerts !== undefined) {
      const started = controller.reloadCerts();
      if ('refused' in started) {
        logEvent(
          log,
          'control.action.refused',
          { path: url.pathname },
          `control: ${action} refused: ${started.refused}`,
        );
        return refused(started.refused);
      }
      logEvent(log, 'control.action.accepted', { path: url.pathname }, `control: ${action} accepted`);
      // 200 with the verdict, refused or not: the request was carried out; `ok` says how it went.
      return started.then((report) => ({
        status: 200,
        body: { accepted: true, action, pid: process.pid, ...report },
      }));
    }
    let options: ActionOptions | undefined;
    if (action === 'rollback') {
      const kind = parseRestartKind(url.searchParams.get('kind'));
      if ('error' in kind) return badRequest(kind.error);
      options = kind;
    }
    const answer: ControlAnswer = controller.perform(action, options);
    if (!answer.accepted) {
      logEvent(
        log,
        'control.action.refused',
        { path: url.pathname },
        `control: ${action} refused: ${answer.reason}`,
      );
      return refused(answer.reason, answer.status);
    }
    logEvent(
      log,
      'control.action.accepted',
      { path: url.pathname, ...(answer.restart === undefined ? {} : { restart: answer.restart }) },
      `control: ${action} accepted`,
    );
    const status = action === 'reload-worker-directory' ? 200 : 202;
    return { status, body: { ...answer, action, pid: process.pid } };
  } catch (err) {
    logEvent(
      log,
      'control.action.failed',
      { err, path: url.pathname },
      `control: ${url.pathname} failed: ${errorMessage(err)}`,
    );
    return { status: 500, body: { error: errorMessage(err), code: 'ERR_NSERVE_CONTROL_INTERNAL' } };
  }
}
