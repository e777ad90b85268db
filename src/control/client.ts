// The client side of the control API: one request, one connection (the server answers with
// `Connection: close`; a connection would not survive a hot restart's exec anyway).
import * as http from 'node:http';
import { errorCode, errorMessage } from '../errors.js';
import { CONTROL_HEADER, CONTROL_PROTOCOL, type ControlAddress, formatControlUrl } from './api.js';

export type ControlErrorCode =
  /** Nothing listens at the address (refused, no socket file), or the connection was cut. */
  | 'ERR_NSERVE_CONTROL_UNREACHABLE'
  /** No answer within the time limit. */
  | 'ERR_NSERVE_CONTROL_TIMEOUT'
  /** 403: missing or wrong token. */
  | 'ERR_NSERVE_CONTROL_TOKEN'
  /** 409: the server refused the action (a restart in progress, stopping, …). */
  | 'ERR_NSERVE_CONTROL_REFUSED'
  /** Any other error status, or an answer that is not JSON. */
  | 'ERR_NSERVE_CONTROL_FAILED'
  /** The answer is not from an nserve control server (no x-nserve-control header), or another protocol. */
  | 'ERR_NSERVE_CONTROL_FOREIGN';

export class ControlError extends Error {
  constructor(
    readonly code: ControlErrorCode,
    message: string,
    readonly status?: number,
  ) {
    super(message);
    this.name = 'ControlError';
  }
}

export interface ControlTarget {
  address: ControlAddress;
  token: string | undefined;
}

export interface ControlResponse {
  status: number;
  body: Record<string, unknown>;
}

/** Transport failures that mean "not there (right now)": worth retrying while a restart execs. */
const UNREACHABLE = new Set(['ECONNREFUSED', 'ENOENT', 'ECONNRESET', 'EPIPE', 'ENOTSOCK']);

/**
 * One request; resolves with any HTTP status, rejects (ControlError) only when there is no answer. Long
 * on purpose: every way an exchange can fail (connect, timeout, a reset, an oversized or malformed
 * answer) is turned into one ControlError here, next to the request it belongs to.
 */
export function request(
  target: ControlTarget,
  method: 'GET' | 'POST',
  path: string,
  timeoutMs = 10_000,
): Promise<ControlResponse> {
  const url = formatControlUrl(target.address);
  const where =
    target.address.kind === 'unix'
      ? { socketPath: target.address.path }
      : { host: target.address.host, port: target.address.port };
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        ...where,
        method,
        path,
        agent: false,
        headers: {
          ...(target.token === undefined ? {} : { authorization: `Bearer ${target.token}` }),
          ...(method === 'POST' ? { 'content-length': '0' } : {}),
        },
      },
      (res) => {
        const mark = res.headers[CONTROL_HEADER];
        if (mark !== CONTROL_PROTOCOL) {
          // Read nothing from it: whatever it says (a pid, "accepted") is not an nserve's answer.
          fail(
            new ControlError(
              'ERR_NSERVE_CONTROL_FOREIGN',
              mark === undefined
                ? `${url} is not an nserve control server (no ${CONTROL_HEADER} header in its answer)`
                : `${url} speaks control protocol ${JSON.stringify(String(mark).slice(0, 20))}, this nserve ctl speaks ${CONTROL_PROTOCOL}: use the nserve that runs the server`,
              res.statusCode,
            ),
          );
          res.on('error', () => {});
          res.destroy();
          return;
        }
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', (err) => fail(err));
        res.on('end', () => {
          clearTimeout(timer);
          const text = Buffer.concat(chunks).toString('utf8');
          let body: Record<string, unknown>;
          try {
            body = JSON.parse(text) as Record<string, unknown>;
            // An object (or the array of GET /fds): a bare number or null is no answer of ours.
            if (typeof body !== 'object' || body === null) throw new TypeError('not an object');
          } catch {
            reject(
              new ControlError(
                'ERR_NSERVE_CONTROL_FAILED',
                `${url} answered ${method} ${path} with status ${res.statusCode} and no JSON: is this an nserve control server?`,
                res.statusCode,
              ),
            );
            return;
          }
          resolve({ status: res.statusCode ?? 0, body });
        });
      },
    );
    const fail = (err: unknown): void => {
      clearTimeout(timer);
      const code = errorCode(err);
      if (code !== undefined && UNREACHABLE.has(code)) {
        reject(new ControlError('ERR_NSERVE_CONTROL_UNREACHABLE', `no server at ${url} (${code})`));
      } else if (err instanceof ControlError) {
        reject(err);
      } else {
        reject(
          new ControlError('ERR_NSERVE_CONTROL_UNREACHABLE', `cannot reach ${url}: ${errorMessage(err)}`),
        );
      }
    };
    const timer = setTimeout(() => {
      req.destroy(
        new ControlError('ERR_NSERVE_CONTROL_TIMEOUT', `no answer from ${url} within ${timeoutMs} ms`),
      );
    }, timeoutMs);
    req.on('error', fail);
    req.end();
  });
}

/** A request whose answer must be 2xx: error statuses become ControlErrors with the server's reason. */
export async function call(
  target: ControlTarget,
  method: 'GET' | 'POST',
  path: string,
  timeoutMs?: number,
): Promise<Record<string, unknown>> {
  const { status, body } = await request(target, method, path, timeoutMs);
  if (status >= 200 && status < 300) return body;
  const reason = typeof body.error === 'string' ? body.error : `status ${status}`;
  const url = formatControlUrl(target.address);
  if (status === 403) {
    throw new ControlError(
      'ERR_NSERVE_CONTROL_TOKEN',
      `${url} refused the token (403): ${target.token === undefined ? 'a token is needed' : 'wrong token'}`,
      status,
    );
  }
  if (status === 409)
    throw new ControlError('ERR_NSERVE_CONTROL_REFUSED', `server refused: ${reason}`, status);
  throw new ControlError(
    'ERR_NSERVE_CONTROL_FAILED',
    `${method} ${path} failed (${status}): ${reason}`,
    status,
  );
}
