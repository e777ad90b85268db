// Self-signed certificates made with openssl for the TLS tests, and what a client sees in a handshake.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tls from 'node:tls';
import { getJson } from './load.js';

export interface TestCert {
  cert: string;
  key: string;
  pem: Buffer;
  serial: string;
}

/** A self-signed EC certificate for 127.0.0.1 (CN `cn`), written to `<dir>/<name>.{crt,key}`. */
export function makeCert(dir: string, name: string, cn = name): TestCert {
  const cert = path.join(dir, `${name}.crt`);
  const key = path.join(dir, `${name}.key`);
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-keyout',
      key,
      '-out',
      cert,
      '-days',
      '30',
      '-subj',
      `/CN=${cn}`,
      '-addext',
      'subjectAltName=IP:127.0.0.1',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'], timeout: 10_000 },
  );
  const serial = execFileSync('openssl', ['x509', '-noout', '-serial', '-in', cert], { timeout: 10_000 })
    .toString()
    .trim()
    .replace(/^serial=/, '');
  return { cert, key, pem: fs.readFileSync(cert), serial };
}

/** Replace a file the way a deploy does: write aside, rename over (a reader never sees half a file). */
export function replaceFile(target: string, from: string | Buffer): void {
  const tmp = `${target}.tmp`;
  fs.writeFileSync(tmp, typeof from === 'string' ? fs.readFileSync(from) : from);
  fs.renameSync(tmp, target);
}

/** A new handshake with 127.0.0.1:port: the certificate the server presents, and the ALPN it chose. */
export function handshake(
  port: number,
  options: { ca?: (string | Buffer)[]; alpn?: string[] } = {},
): Promise<{ serial: string; subject: string; alpn: string | false }> {
  return new Promise((resolve, reject) => {
    const sock = tls.connect({
      host: '127.0.0.1',
      port,
      ...(options.ca === undefined ? { rejectUnauthorized: false } : { ca: options.ca }),
      ...(options.alpn === undefined ? {} : { ALPNProtocols: options.alpn }),
    });
    const timer = setTimeout(() => sock.destroy(new Error('no TLS handshake within 5 s')), 5000);
    sock.once('secureConnect', () => {
      clearTimeout(timer);
      const peer = sock.getPeerCertificate();
      const alpn = sock.alpnProtocol ?? false;
      sock.end();
      resolve({ serial: peer.serialNumber.toUpperCase(), subject: String(peer.subject?.CN ?? ''), alpn });
    });
    sock.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

/** An ssl:// bind URI on an ephemeral loopback port. */
export function sslBind(c: { cert: string; key: string }, extra = ''): string {
  return `ssl://127.0.0.1:0?cert=${c.cert}&key=${c.key}${extra}`;
}

/** One HTTPS GET on a new connection, body parsed as JSON. */
export function getJsonTls(
  port: number,
  ca: (string | Buffer)[],
  urlPath = '/',
): Promise<{ status: number; body: Record<string, unknown> }> {
  return getJson(port, urlPath, { ca });
}
