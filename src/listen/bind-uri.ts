// Bind URIs: tcp://HOST:PORT, tcp://[IPV6]:PORT, ssl://HOST:PORT?cert=…&key=… (Puma's parameters) and
// unix:///path[?mode=0660], parsed into the specs the binder opens; and socket addresses back to URIs.
import { type NserveError, usageError } from '../errors.js';
import type * as native from '../native/index.js';
import {
  ALPNS,
  type Alpn,
  MIN_VERSIONS,
  type MinVersion,
  type TlsBindOptions,
  VERIFY_MODES,
  type VerifyMode,
} from './tls.js';

/** How new connections are spread over the reuseport slots of a TCP bind (docs/balancing.md). */
export type Balance = 'kernel' | 'ip-hash';
export const BALANCES: readonly Balance[] = ['kernel', 'ip-hash'];

export type BindSpec =
  | {
      kind: 'tcp';
      uri: string;
      family: 'tcp4' | 'tcp6';
      host: string;
      port: number;
      /** 'ip-hash': pin each client address to one slot; absent: the kernel's hash. */
      balance?: Balance;
      /** `ssl://` binds: the accepting process serves TLS (tls.ts); the socket itself is plain TCP. */
      tls?: TlsBindOptions;
    }
  | { kind: 'unix'; uri: string; path: string; mode: number | undefined };

const VALID_BIND =
  'expected tcp://HOST:PORT, tcp://[IPV6]:PORT, ssl://HOST:PORT?cert=/path&key=/path or unix:///absolute/path[?mode=0660]';

const SSL_PARAMS = ['cert', 'key', 'ca', 'verify_mode', 'min_version', 'alpn'] as const;

export function parseBindUri(uri: string): BindSpec {
  const bad = (why: string): NserveError =>
    usageError('ERR_NSERVE_INVALID_BIND', `invalid bind URI "${uri}": ${why}`);
  if (uri.startsWith('unix://')) {
    const rest = uri.slice('unix://'.length);
    const q = rest.indexOf('?');
    const path = q === -1 ? rest : rest.slice(0, q);
    if (!path.startsWith('/')) throw bad(`the socket path must be absolute; ${VALID_BIND}`);
    if (Buffer.byteLength(path) > 107)
      throw bad('the socket path is longer than 107 bytes (the sun_path limit)');
    let mode: number | undefined;
    if (q !== -1) {
      const params = new URLSearchParams(rest.slice(q + 1));
      for (const key of params.keys()) {
        if (key !== 'mode') throw bad(`unknown parameter "${key}" (only "mode" is valid)`);
      }
      const m = params.get('mode');
      if (m !== null) {
        if (!/^0?[0-7]{3}$/.test(m)) throw bad(`mode "${m}" is not an octal permission like 0660`);
        mode = Number.parseInt(m, 8);
      }
    }
    return { kind: 'unix', uri, path, mode };
  }
  if (uri.startsWith('tcp://'))
    return { kind: 'tcp', uri, ...parseHostPort(uri.slice('tcp://'.length), bad) };
  if (uri.startsWith('ssl://')) {
    const rest = uri.slice('ssl://'.length);
    const q = rest.indexOf('?');
    if (q === -1) throw bad('an ssl:// bind needs ?cert=/path/cert.pem&key=/path/key.pem');
    const address = parseHostPort(rest.slice(0, q), bad);
    return { kind: 'tcp', uri, ...address, tls: parseSslParams(new URLSearchParams(rest.slice(q + 1)), bad) };
  }
  throw bad(VALID_BIND);
}

function parseHostPort(
  rest: string,
  bad: (why: string) => NserveError,
): { family: 'tcp4' | 'tcp6'; host: string; port: number } {
  const m = /^(\[[0-9a-fA-F:.]+\]|[^:/[\]]+):(\d+)$/.exec(rest);
  if (m === null) throw bad(VALID_BIND);
  const hostPart = m[1]!;
  const port = Number(m[2]);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw bad(`port ${m[2]} is out of range 0-65535`);
  if (hostPart.startsWith('[')) {
    const host = hostPart.slice(1, -1);
    if (!isIPv6(host)) throw bad(`"${host}" is not an IPv6 address`);
    return { family: 'tcp6', host, port };
  }
  const host = hostPart === 'localhost' ? '127.0.0.1' : hostPart;
  if (!isIPv4(host)) throw bad(`"${hostPart}" is not an IPv4 address (use [::1] for IPv6)`);
  return { family: 'tcp4', host, port };
}

/** Puma's ssl:// parameters (cert, key, ca, verify_mode) plus min_version and alpn. */
function parseSslParams(params: URLSearchParams, bad: (why: string) => NserveError): TlsBindOptions {
  for (const key of new Set(params.keys())) {
    if (!(SSL_PARAMS as readonly string[]).includes(key))
      throw bad(`unknown parameter "${key}" (valid: ${SSL_PARAMS.join(', ')})`);
    if (params.getAll(key).length > 1) throw bad(`parameter "${key}" is given twice`);
  }
  const file = (name: 'cert' | 'key' | 'ca', required: boolean): string | undefined => {
    const v = params.get(name);
    if (v === null) {
      if (required) throw bad(`missing parameter "${name}" (an ssl:// bind needs cert and key)`);
      return undefined;
    }
    if (!v.startsWith('/')) throw bad(`${name} must be an absolute path, got "${v}"`);
    return v;
  };
  const one = <T extends string>(name: string, valid: readonly T[], dflt: T): T => {
    const v = params.get(name);
    if (v === null) return dflt;
    if (!(valid as readonly string[]).includes(v))
      throw bad(`${name} "${v}" is not one of ${valid.join(', ')}`);
    return v as T;
  };
  const alpnParam = params.get('alpn');
  const alpn = alpnParam === null ? ['http/1.1'] : alpnParam.split(',');
  for (const a of alpn) {
    if (!(ALPNS as readonly string[]).includes(a))
      throw bad(`alpn "${a}" is not one of ${ALPNS.join(', ')} (a comma-separated list)`);
  }
  return {
    cert: file('cert', true)!,
    key: file('key', true)!,
    ca: file('ca', false),
    verifyMode: one<VerifyMode>('verify_mode', VERIFY_MODES, 'none'),
    minVersion: one<MinVersion>('min_version', MIN_VERSIONS, 'TLSv1.2'),
    alpn: [...new Set(alpn as Alpn[])],
  };
}

function isIPv4(s: string): boolean {
  const parts = s.split('.');
  return parts.length === 4 && parts.every((p) => /^\d{1,3}$/.test(p) && Number(p) <= 255);
}

function isIPv6(s: string): boolean {
  return s.includes(':') && /^[0-9a-fA-F:.]+$/.test(s);
}

export function formatAddress(address: native.SocketAddress): string {
  if (address.family === 'unix') return `unix://${address.path}`;
  return address.family === 'IPv6'
    ? `tcp://[${address.address}]:${address.port}`
    : `tcp://${address.address}:${address.port}`;
}
