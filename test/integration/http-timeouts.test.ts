// --keep-alive-timeout (and the app's own setting under listen-compat): a keep-alive connection idle for
// longer than Node's default (5 s, and Node adds 1 s) but shorter than the setting is still usable; with the default it is
// closed.
import assert from 'node:assert/strict';
import * as net from 'node:net';
import * as path from 'node:path';
import { after, test } from 'node:test';
import { FIXTURES, killAll, runNserve, serveApp } from '../helpers/server.js';

after(killAll);

/** Send one request on `sock` and read one whole response (Content-Length framed). */
function request(sock: net.Socket): Promise<string> {
  return new Promise((resolve, reject) => {
    let buf = '';
    const onData = (chunk: Buffer): void => {
      buf += chunk.toString('latin1');
      const end = buf.indexOf('\r\n\r\n');
      if (end === -1) return;
      const length = Number(/content-length: (\d+)/i.exec(buf.slice(0, end))?.[1] ?? 0);
      if (buf.length >= end + 4 + length) {
        cleanup();
        resolve(buf);
      }
    };
    const onClose = (): void => {
      cleanup();
      reject(new Error(`connection closed by the server (read ${JSON.stringify(buf)})`));
    };
    const cleanup = (): void => {
      sock.off('data', onData);
      sock.off('close', onClose);
    };
    sock.on('data', onData);
    sock.on('close', onClose);
    sock.write('GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
  });
}

/** Request, stay idle `idleMs`, request again on the same connection: did the second request work? */
async function usableAfterIdle(port: number, idleMs: number): Promise<boolean> {
  const sock = net.connect(port, '127.0.0.1');
  sock.on('error', () => {});
  await new Promise<void>((resolve, reject) => sock.once('connect', resolve).once('error', reject));
  try {
    assert.match(await request(sock), /^HTTP\/1\.1 200/);
    await new Promise((r) => setTimeout(r, idleMs));
    if (sock.destroyed) return false;
    return /^HTTP\/1\.1 200/.test(await request(sock).catch(() => ''));
  } finally {
    sock.destroy();
  }
}

test("keep-alive: 7 s idle survives --keep-alive-timeout 10 and the app's own 10 s, not the 5 s default (Node closes at 5 s + 1 s)", {
  timeout: 60_000,
}, async (t) => {
  const [withFlag, ownSetting, byDefault] = await Promise.all([
    serveApp(t, 'examples/hello.mjs', { args: ['--keep-alive-timeout', '10'] }),
    serveApp(t, path.join(FIXTURES, 'operator/own-keepalive.mjs'), { workers: 1 }),
    serveApp(t, 'examples/hello.mjs'),
  ]);
  const [a, b, c] = await Promise.all([
    usableAfterIdle(withFlag.port, 7000),
    usableAfterIdle(ownSetting.port, 7000),
    usableAfterIdle(byDefault.port, 7000),
  ]);
  assert.equal(a, true, '--keep-alive-timeout 10: the connection was closed after 7 s idle');
  assert.equal(b, true, "the app's own keepAliveTimeout 10000 (listen-compat) was not honoured");
  assert.equal(c, false, 'with the default (5 s) the connection should have been closed');
});

test('--headers-timeout above --request-timeout: one line, exit 2', async () => {
  const r = await runNserve([
    'start',
    'examples/hello.mjs',
    '--headers-timeout',
    '90',
    '--request-timeout',
    '30',
  ]);
  assert.equal(r.code, 2);
  assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  assert.match(r.stderr, /invalid --headers-timeout: 90: expected at most the request timeout \(30 s\)/);
});
