// The control API's addresses, shared by the control server (server.ts), its client (client.ts), `nserve
// ctl` and the config: where a control server listens, and the header every answer carries. Its routes
// are endpoints.ts. Every process reads the config, a worker too (which never runs a control server), so
// this module stays small: the address parser and nothing of the server or its routes.
import * as path from 'node:path';
import { errorMessage, usageError } from '../errors.js';
import { parseBindUri } from '../listen/bind-uri.js';

export type ControlAddress =
  | { kind: 'unix'; path: string; mode: number }
  | { kind: 'tcp'; family: 'tcp4' | 'tcp6'; host: string; port: number };

/**
 * Every answer of the control server carries this header, `x-nserve-control: 1` (the protocol version):
 * `nserve ctl` trusts no answer without it (another program at that address: an app, a proxy).
 */
export const CONTROL_HEADER = 'x-nserve-control';
export const CONTROL_PROTOCOL = '1';

/** The socket mode of a unix control socket unless the URL says `?mode=`. */
export const DEFAULT_SOCKET_MODE = 0o600;

const VALID = 'unix:///absolute/path, tcp://HOST:PORT (with --control-token) or auto';

/**
 * `unix:///path[?mode=0660]` or `tcp://HOST:PORT` (numeric host, `localhost` allowed; port 0 picks a free
 * one, recorded in the state file). `auto` is resolved by config/derive.ts, not here.
 */
export function parseControlUrl(url: string, flag = '--control-url'): ControlAddress {
  if (!url.startsWith('unix://') && !url.startsWith('tcp://'))
    throw usageError(
      'ERR_NSERVE_INVALID_CONFIG',
      `invalid ${flag}: ${JSON.stringify(url)}: expected ${VALID}`,
    );
  let spec: ReturnType<typeof parseBindUri>;
  try {
    spec = parseBindUri(url);
  } catch (err) {
    // parseBindUri says what is wrong with the URI; name the flag it came from.
    const why = errorMessage(err).replace(/^invalid bind URI "[^"]*": /, '');
    throw usageError('ERR_NSERVE_INVALID_CONFIG', `invalid ${flag}: ${JSON.stringify(url)}: ${why}`);
  }
  if (spec.kind === 'unix') return { kind: 'unix', path: spec.path, mode: spec.mode ?? DEFAULT_SOCKET_MODE };
  return { kind: 'tcp', family: spec.family, host: spec.host, port: spec.port };
}

export function formatControlUrl(address: ControlAddress): string {
  if (address.kind === 'unix') return `unix://${address.path}`;
  return address.family === 'tcp6'
    ? `tcp://[${address.host}]:${address.port}`
    : `tcp://${address.host}:${address.port}`;
}

/** The control server a `start` runs (Config.control). */
export interface ControlConfig {
  address: ControlAddress;
  /** Required for TCP; optional for a unix socket (whose mode already limits who may connect). */
  token: string | undefined;
  /** `--control-url auto`: socket next to the state file, token generated. */
  auto: boolean;
}

export interface ControlInput {
  url: string | undefined;
  token: string | undefined;
  /** Absolute path of --state, if any. */
  stateFile: string | undefined;
  /** How to name the inputs in errors: '--control-url' or 'config key controlUrl'. */
  urlName: string;
  tokenName: string;
  /** The token an earlier image of this same PID generated (`auto` keeps it across hot restarts). */
  previousToken?: string | undefined;
}

const TOKEN = /^[\x21-\x7e]{1,512}$/;

/** Validate the control options once, at start-up; errors are one line naming the input. */
export function resolveControl(input: ControlInput): ControlConfig | undefined {
  const { url, token } = input;
  if (token !== undefined && !TOKEN.test(token)) {
    // Never echo a token, not even a malformed one.
    throw usageError(
      'ERR_NSERVE_INVALID_CONFIG',
      `invalid ${input.tokenName}: expected 1 to 512 printable ASCII characters without spaces (value not shown)`,
    );
  }
  if (url === undefined) {
    if (token !== undefined)
      throw usageError('ERR_NSERVE_INVALID_CONFIG', `${input.tokenName} needs a control URL (--control-url)`);
    return undefined;
  }
  if (url === 'auto') {
    if (input.stateFile === undefined) {
      throw usageError(
        'ERR_NSERVE_INVALID_CONFIG',
        `${input.urlName} auto needs --state FILE: the socket goes next to it and nserve ctl reads the token from it`,
      );
    }
    const socket = path.join(
      path.dirname(input.stateFile),
      `${path.basename(input.stateFile, path.extname(input.stateFile))}.ctl.sock`,
    );
    if (Buffer.byteLength(socket) > 107) {
      throw usageError(
        'ERR_NSERVE_INVALID_CONFIG',
        `${input.urlName} auto: the socket path ${socket} is longer than 107 bytes (the sun_path limit); give a unix:///path`,
      );
    }
    return {
      address: { kind: 'unix', path: socket, mode: DEFAULT_SOCKET_MODE },
      token:
        token ??
        input.previousToken ??
        process.getBuiltinModule('node:crypto').randomBytes(16).toString('hex'),
      auto: true,
    };
  }
  const address = parseControlUrl(url, input.urlName);
  if (address.kind === 'tcp' && token === undefined) {
    throw usageError(
      'ERR_NSERVE_INVALID_CONFIG',
      `${input.urlName} ${url} needs --control-token TOKEN: a TCP control port is open to every local user (or use unix:///path or auto)`,
    );
  }
  return { address, token, auto: false };
}
