// TLS binds (`ssl://HOST:PORT?cert=…&key=…`): reading and checking certificates, the options Node's
// tls/https/http2 servers take, and re-reading them for rotation (SIGHUP, `nserve ctl reload-certs`).
//
// Who reads what: the process that validates the config (master, single server, boot check) reads every
// bind's certificate and key once, to refuse bad files before any socket is bound, and keeps nothing.
// Only the processes that accept (a single server, workers) keep a key in memory. Keys are read from
// their files by path: never logged, never in the environment or on the master–worker channel.
import type { KeyObject, X509Certificate } from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import type * as tls from 'node:tls';
import { errorCode, errorMessage, type NserveError, usageError } from '../errors.js';
import { logEvent } from '../log/events.js';
import type { Logger } from '../log/logger.js';

// node:crypto and node:tls are loaded by the first ssl:// bind, not by every process: a server without
// TLS binds never needs them, and they cost each process memory and start-up time (issue 17).
const nodeCrypto = (): typeof import('node:crypto') => process.getBuiltinModule('node:crypto');
const nodeTls = (): typeof import('node:tls') => process.getBuiltinModule('node:tls');

/**
 * `value instanceof tls.Server` (https's and http2's secure servers are tls.Servers), without loading
 * node:tls where nothing uses TLS: a tls.Server is the net.Server that has `setSecureContext`.
 */
export function isTlsServer(value: unknown): value is tls.Server {
  return value instanceof net.Server && typeof (value as Partial<tls.Server>).setSecureContext === 'function';
}

export type VerifyMode = 'none' | 'peer' | 'force_peer';
export const VERIFY_MODES: readonly VerifyMode[] = ['none', 'peer', 'force_peer'];
export type MinVersion = 'TLSv1.2' | 'TLSv1.3';
export const MIN_VERSIONS: readonly MinVersion[] = ['TLSv1.2', 'TLSv1.3'];
export type Alpn = 'h2' | 'http/1.1';
export const ALPNS: readonly Alpn[] = ['h2', 'http/1.1'];

/** The TLS part of an `ssl://` bind, as parsed from its URI (binder.ts). Paths are absolute. */
export interface TlsBindOptions {
  cert: string;
  key: string;
  /** CA bundle client certificates are checked against (verify_mode peer / force_peer). */
  ca: string | undefined;
  verifyMode: VerifyMode;
  minVersion: MinVersion;
  /** ALPN protocols offered: with `h2`, an HTTP/2 server (HTTP/1.1 fallback when listed too). */
  alpn: readonly Alpn[];
}

/** What stats report about the certificate a bind serves (public data only). */
export interface CertInfo {
  subject: string;
  issuer: string;
  serial: string;
  validFrom: string;
  validTo: string;
  fingerprint256: string;
}

/** The files of one bind, read and checked: what a secure context is made of. */
export interface TlsMaterial {
  cert: Buffer;
  key: Buffer;
  ca: Buffer | undefined;
  info: CertInfo;
}

function tlsError(uri: string, why: string, cause?: unknown): NserveError {
  return usageError('ERR_NSERVE_TLS', `invalid TLS bind ${uri}: ${why}`, cause);
}

function readPem(uri: string, what: string, file: string): Buffer {
  try {
    return fs.readFileSync(file);
  } catch (err) {
    const code = errorCode(err);
    const why =
      code === 'ENOENT'
        ? 'no such file'
        : code === 'EACCES'
          ? 'permission denied'
          : code === 'EISDIR'
            ? 'is a directory'
            : errorMessage(err);
    throw tlsError(uri, `cannot read the ${what} file ${file}: ${why}`, err);
  }
}

function isoDate(openssl: string): string {
  const d = new Date(openssl);
  return Number.isNaN(d.getTime()) ? openssl : d.toISOString();
}

export function certInfo(cert: X509Certificate): CertInfo {
  return {
    // One line: OpenSSL separates RDNs with newlines.
    subject: cert.subject.split('\n').join(', '),
    issuer: cert.issuer.split('\n').join(', '),
    serial: cert.serialNumber,
    validFrom: isoDate(cert.validFrom),
    validTo: isoDate(cert.validTo),
    fingerprint256: cert.fingerprint256,
  };
}

/**
 * Read and check one bind's files: each readable, the certificate and key PEM that parse, the key the
 * certificate's, the CA bundle parseable, and the whole accepted by OpenSSL as a secure context. Every
 * failure is one line naming the file (the key's content never appears in it).
 */
export function loadTlsMaterial(uri: string, options: TlsBindOptions): TlsMaterial {
  const cert = readPem(uri, 'certificate', options.cert);
  const key = readPem(uri, 'key', options.key);
  const ca = options.ca === undefined ? undefined : readPem(uri, 'CA', options.ca);
  const { createPrivateKey, X509Certificate } = nodeCrypto();
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(cert);
  } catch (err) {
    throw tlsError(uri, `${options.cert} is not a PEM certificate (${errorMessage(err)})`, err);
  }
  let keyObject: KeyObject;
  try {
    keyObject = createPrivateKey(key);
  } catch (err) {
    // The message of a failed parse never quotes the key.
    throw tlsError(
      uri,
      `${options.key} is not an unencrypted PEM private key (${errorCode(err) ?? 'unreadable'})`,
      err,
    );
  }
  if (!x509.checkPrivateKey(keyObject))
    throw tlsError(uri, `the key ${options.key} does not match the certificate ${options.cert}`);
  if (ca !== undefined && options.ca !== undefined) {
    try {
      new X509Certificate(ca);
    } catch (err) {
      throw tlsError(uri, `${options.ca} is not a PEM CA certificate (${errorMessage(err)})`, err);
    }
  }
  const material: TlsMaterial = { cert, key, ca, info: certInfo(x509) };
  try {
    nodeTls().createSecureContext(secureContextOptions(options, material));
  } catch (err) {
    throw tlsError(uri, `OpenSSL refused ${options.cert} with ${options.key}: ${errorMessage(err)}`, err);
  }
  return material;
}

/** The certificate part of a secure context (what setSecureContext replaces on rotation). */
export function secureContextOptions(
  options: TlsBindOptions,
  material: TlsMaterial,
): tls.SecureContextOptions {
  return {
    cert: material.cert,
    key: material.key,
    ...(material.ca === undefined ? {} : { ca: material.ca }),
    minVersion: options.minVersion,
  };
}

/** Everything a tls/https/http2 server of this bind is created with. */
export function serverOptions(options: TlsBindOptions, material: TlsMaterial): tls.TlsOptions {
  return {
    ...secureContextOptions(options, material),
    // peer: ask for a client certificate, refuse an invalid one (checked after the handshake, as
    // OpenSSL's VERIFY_PEER does not require one); force_peer: a valid one is required.
    requestCert: options.verifyMode !== 'none',
    rejectUnauthorized: options.verifyMode === 'force_peer',
  };
}

/**
 * verify_mode=peer: a client that presented a certificate that does not verify is refused; one that
 * presented none is served (OpenSSL's SSL_VERIFY_PEER without FAIL_IF_NO_PEER_CERT).
 */
export function refusesPeer(options: TlsBindOptions, socket: tls.TLSSocket): boolean {
  if (options.verifyMode !== 'peer' || socket.authorized) return false;
  const peer = socket.getPeerCertificate();
  return peer !== null && Object.keys(peer).length > 0;
}

/** The verdict of one bind's reload in one process. */
export interface CertVerdict {
  uri: string;
  ok: boolean;
  /** Why the new files were refused (the old certificate keeps serving). */
  error?: string;
  /** The certificate served after the reload (the new one, or the old one when refused). */
  cert?: CertInfo;
}

/** One `reload-certs`: what each bind serves afterwards, and what each worker said. */
export interface CertReload {
  id: number;
  at: string;
  /** Every process took the new files of every bind. */
  ok: boolean;
  /** Per bind: refused (with why) if any process refused it. */
  binds: CertVerdict[];
  /** Cluster mode: each worker's answer. */
  workers: { index: number; pid: number; ok: boolean; error?: string }[];
}

/** The `tls` part of stats: each bind's certificate (for expiry alerts) and the last reload. */
export interface TlsStats {
  binds: (CertInfo & { uri: string; daysLeft: number })[];
  lastReload: CertReload | null;
}

export function tlsStats(
  binds: readonly { uri: string; cert: CertInfo }[],
  last: CertReload | undefined,
): TlsStats {
  const now = Date.now();
  return {
    binds: binds.map((b) => ({
      uri: b.uri,
      ...b.cert,
      daysLeft: Math.floor((Date.parse(b.cert.validTo) - now) / 86_400_000),
    })),
    lastReload: last ?? null,
  };
}

/** Merge the verdicts of several processes: a bind is refused if any process refused it. */
export function mergeVerdicts(lists: readonly (readonly CertVerdict[])[]): CertVerdict[] {
  const out = new Map<string, CertVerdict>();
  for (const list of lists) {
    for (const v of list) {
      const seen = out.get(v.uri);
      if (seen === undefined || (seen.ok && !v.ok)) out.set(v.uri, v);
    }
  }
  return [...out.values()];
}

/** One line for the log and `ctl`: what was reloaded, or why not. */
export function describeReload(r: CertReload): string {
  if (r.binds.length === 0) return 'reload-certs: no ssl:// bind to reload';
  const parts = r.binds.map((b) =>
    b.ok
      ? `${b.uri.split('?')[0]}: serial ${b.cert?.serial ?? '?'}, expires ${b.cert?.validTo ?? '?'}`
      : `${b.uri.split('?')[0]}: refused, the old certificate keeps serving: ${b.error ?? 'unknown error'}`,
  );
  const down = r.workers.filter(
    (w) => !w.ok && w.error !== undefined && !r.binds.some((b) => b.error === w.error),
  );
  for (const w of down) parts.push(`worker ${w.index} (pid ${w.pid}): ${w.error}`);
  return `reload-certs #${r.id} ${r.ok ? 'done' : 'refused'}: ${parts.join('; ')}`;
}

/**
 * The TLS binds of one accepting process: each bind's options and the material it serves. `reload`
 * re-reads every bind's files and hands the new options to `apply` (which sets them on the servers of
 * that bind); a bind whose new files are bad keeps its old material.
 */
export class TlsBinds {
  private readonly binds = new Map<string, { options: TlsBindOptions; material: TlsMaterial }>();

  constructor(binds: readonly { uri: string; tls?: TlsBindOptions | undefined }[]) {
    for (const b of binds) {
      if (b.tls !== undefined)
        this.binds.set(b.uri, { options: b.tls, material: loadTlsMaterial(b.uri, b.tls) });
    }
  }

  get size(): number {
    return this.binds.size;
  }

  options(uri: string): TlsBindOptions | undefined {
    return this.binds.get(uri)?.options;
  }

  serverOptions(uri: string): tls.TlsOptions | undefined {
    const b = this.binds.get(uri);
    return b === undefined ? undefined : serverOptions(b.options, b.material);
  }

  info(): { uri: string; cert: CertInfo }[] {
    return [...this.binds].map(([uri, b]) => ({ uri, cert: b.material.info }));
  }

  reload(apply: (uri: string, options: tls.SecureContextOptions) => void): CertVerdict[] {
    const verdicts: CertVerdict[] = [];
    for (const [uri, b] of this.binds) {
      try {
        // loadTlsMaterial has OpenSSL build a context from the new files first: a refusal happens
        // before any server of the bind is touched.
        const material = loadTlsMaterial(uri, b.options);
        apply(uri, secureContextOptions(b.options, material));
        b.material = material;
        verdicts.push({ uri, ok: true, cert: material.info });
      } catch (err) {
        verdicts.push({ uri, ok: false, error: errorMessage(err), cert: b.material.info });
      }
    }
    return verdicts;
  }
}

/** Refuse bad certificate files of any `ssl://` bind at start-up (one line naming the file: exit 2). */
export function checkTlsBinds(
  binds: readonly { uri: string; tls?: TlsBindOptions | undefined }[],
): CertInfo[] {
  return binds.flatMap((b) => (b.tls === undefined ? [] : [loadTlsMaterial(b.uri, b.tls).info]));
}

/** The public view of each TLS bind's certificate, read from its file (the master's stats). */
export function readCertInfo(file: string): CertInfo | undefined {
  try {
    return certInfo(new (nodeCrypto().X509Certificate)(fs.readFileSync(file)));
  } catch {
    return undefined;
  }
}

/** Rotation in a process that serves itself (single mode): reload, log one line, keep the last verdict. */
export class LocalCerts {
  private last: CertReload | undefined;
  private nextId = 1;

  constructor(
    private readonly server: {
      reloadCerts(): CertVerdict[];
      certificates(): { uri: string; cert: CertInfo }[];
    },
    private readonly log: Logger,
  ) {}

  get configured(): boolean {
    return this.server.certificates().length > 0;
  }

  /** `refused` when there is nothing to reload or the server is not in a state to (a restart reads afresh). */
  reload(state: string): Promise<CertReload> | { refused: string } {
    if (!this.configured) return { refused: 'no ssl:// bind: no certificate to reload' };
    if (state !== 'running')
      return {
        refused:
          state === 'restarting' ? 'a restart is in progress (it reads the certificates afresh)' : state,
      };
    const binds = this.server.reloadCerts();
    const report: CertReload = {
      id: this.nextId++,
      at: new Date().toISOString(),
      ok: binds.every((b) => b.ok),
      binds,
      workers: [],
    };
    this.last = report;
    const line = describeReload(report);
    if (report.ok) logEvent(this.log, 'tls.reload.done', { reload: report.id, binds }, line);
    else logEvent(this.log, 'tls.reload.failed', { code: 'ERR_NSERVE_TLS', reload: report.id, binds }, line);
    return Promise.resolve(report);
  }

  /** The `tls` field of stats, when there are ssl:// binds. */
  statsField(): { tls?: TlsStats } {
    return this.configured ? { tls: tlsStats(this.server.certificates(), this.last) } : {};
  }
}
