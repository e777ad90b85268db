// The TCP control server under a local user who holds connections open: silent ones, slowloris headers,
// garbage. An operator with the token must still get in, promptly.
import assert from 'node:assert/strict';
import * as net from 'node:net';
import { after, test } from 'node:test';
import { ctl } from '../helpers/control.js';
import { killAll, processAlive, startNserve } from '../helpers/server.js';

after(killAll);

const TOKEN = 'adversarial-control-token-1234';

interface Attack {
  sockets: net.Socket[];
  /** Connections the server closed (FIN or RST) so far. */
  closed: number;
  stop(): void;
}

/**
 * Hold `n` connections open on the control port, of four kinds: silent; slowloris (a request line, then
 * one header byte a second); an endless request target, one byte a second; binary garbage. With
 * `reconnect`, every connection the server closes is opened again at once, as a determined attacker would.
 */
function attack(port: number, n: number, reconnect: boolean, kinds = 4): Attack {
  const state: Attack = { sockets: [], closed: 0, stop: () => {} };
  let running = true;
  const timers: NodeJS.Timeout[] = [];
  const open = (i: number): void => {
    if (!running) return;
    const sock = net.connect(port, '127.0.0.1');
    state.sockets.push(sock);
    sock.on('error', () => {});
    sock.on('data', () => {});
    sock.once('close', () => {
      state.closed++;
      if (reconnect) setTimeout(() => open(i), 10);
    });
    const kind = i % kinds;
    sock.once('connect', () => {
      if (kind === 0) return;
      if (kind === 1) sock.write('GET /stats HTTP/1.1\r\nHost: x\r\n');
      if (kind === 2) sock.write('GET /');
      const t = setInterval(() => {
        if (sock.destroyed) clearInterval(t);
        else sock.write(kind === 1 ? 'X' : kind === 2 ? 'a' : '\x00\xff garbage');
      }, 1000);
      timers.push(t);
    });
  };
  for (let i = 0; i < n; i++) open(i);
  state.stop = () => {
    running = false;
    for (const t of timers) clearInterval(t);
    for (const s of state.sockets) s.destroy();
  };
  return state;
}

async function startWithTcpControl(t: { after(fn: () => void): void }) {
  const srv = startNserve([
    'start',
    'examples/hello.mjs',
    '--bind',
    'tcp://127.0.0.1:0',
    '--control-url',
    'tcp://127.0.0.1:0',
    '--control-token',
    TOKEN,
  ]);
  t.after(() => srv.kill());
  const listening = await srv.waitForEvent('control.server.listening');
  const url = String(listening.url);
  return { srv, url, port: Number(url.slice(url.lastIndexOf(':') + 1)) };
}

async function timedStats(url: string): Promise<{ ms: number; code: number | null; stderr: string }> {
  const t0 = Date.now();
  const r = await ctl(['stats', '--json', '--control-url', url, '--control-token', TOKEN], 15_000);
  return { ms: Date.now() - t0, code: r.code, stderr: r.stderr };
}

test('an authorised ctl stats succeeds promptly while 100 silent or slowloris connections are held open', {
  timeout: 60_000,
}, async (t) => {
  const { srv, url, port } = await startWithTcpControl(t);
  // Silent, slow headers, endless request target: nothing the parser can reject early.
  const a = attack(port, 100, false, 3);
  t.after(() => a.stop());
  await new Promise((r) => setTimeout(r, 1000));
  const r = await timedStats(url);
  assert.equal(r.code, 0, r.stderr);
  // ctl itself takes ~150 ms to start on this machine.
  assert.ok(r.ms < 3000, `ctl stats took ${r.ms} ms`);
  t.diagnostic(`ctl stats under attack: ${r.ms} ms`);
  // Unauthenticated connections are timed out within a few seconds, slowloris ones included.
  await new Promise((r) => setTimeout(r, 6000));
  const open = a.sockets.filter((s) => !s.destroyed && s.readyState === 'open').length;
  assert.equal(open, 0, `${open} attacking connections still open after 7 s`);
  assert.ok(processAlive(srv.pid));
});

test('an authorised ctl stats succeeds while an attacker reconnects every connection the server closes', {
  timeout: 60_000,
}, async (t) => {
  const { srv, url, port } = await startWithTcpControl(t);
  const a = attack(port, 100, true);
  t.after(() => a.stop());
  await new Promise((r) => setTimeout(r, 1000));
  for (let i = 0; i < 3; i++) {
    const r = await timedStats(url);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(r.ms < 3000, `ctl stats #${i} took ${r.ms} ms`);
    t.diagnostic(`ctl stats #${i} under a reconnecting attack: ${r.ms} ms`);
    await new Promise((r) => setTimeout(r, 1500));
  }
  assert.ok(processAlive(srv.pid));
  // Thousands of malformed or timed-out connections do not flood the log.
  const warnings = srv.lines.filter((l) => String(l.event).startsWith('control.')).length;
  t.diagnostic(`${a.closed} attacking connections closed by the server, ${warnings} warning lines`);
  assert.ok(warnings <= 20, `${warnings} control warnings logged`);
});
