// App text cannot forge log lines or reach the terminal raw: an uncaught exception's message (worker and
// single mode), a worker's leaving reason and a request path in the access log are written with their
// control characters escaped, in every log format, one event per line. --tag-output keeps the app's own
// bytes (colours included) but tags every physical line, a bare CR ending one too.
import assert from 'node:assert/strict';
import * as net from 'node:net';
import * as path from 'node:path';
import { after, test } from 'node:test';
import { FIXTURES, freePort, killAll, type ServerProcess, startApp, until } from '../helpers/server.js';

after(killAll);

const APP = path.join(FIXTURES, 'adversarial/log-forger.mjs');
// Raw control characters that must never reach the output: C0 but LF, DEL, C1.
// biome-ignore lint/suspicious/noControlCharactersInRegex: looking for raw control characters
const RAW_CONTROL = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/;

const EVENT: Record<string, RegExp> = {
  pretty: /^\[\d\d:\d\d:\d\d\.\d{3}\] [A-Z]+: (single|master|worker \d): /,
  logfmt: /^time=\S+ level=\w+ role=\w+ /,
  json: /^\{"level":\d+,"time":"[^"]+","pid":\d+,/,
};
/** What the fixture's message would look like, were it let through, as an event of each format. */
const FORGED =
  /^(level=info msg="FORGED|\{"level":30,"msg":"FORGED|\[12:00:00\.000\] INFO: master: FORGED|time=2026-01-01)/;

/** Everything the server writes on stdout and stderr, as text (attached before any byte can arrive). */
function capture(srv: ServerProcess): { out: () => string; err: () => string } {
  let out = '';
  srv.child.stdout?.on('data', (chunk: string) => {
    out += chunk;
  });
  return { out: () => out, err: () => srv.stderr };
}

/** One request with raw bytes in its path, as a client may send it; resolves with the raw answer. */
function rawRequest(port: number, pathBytes: number[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, '127.0.0.1');
    let got = '';
    sock.setEncoding('latin1');
    sock.on('data', (d: string) => {
      got += d;
    });
    sock.on('error', reject);
    sock.on('close', () => resolve(got));
    sock.write(
      Buffer.concat([
        Buffer.from('GET '),
        Buffer.from(pathBytes),
        Buffer.from(' HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'),
      ]),
    );
    setTimeout(() => sock.destroy(), 3000).unref();
  });
}

function assertNoForgery(format: string, text: string, where: string): void {
  assert.doesNotMatch(
    text,
    RAW_CONTROL,
    `${where}: a raw control character: ${JSON.stringify(text.slice(-3000))}`,
  );
  for (const line of text.split('\n')) {
    if (line === '') continue;
    assert.doesNotMatch(line, FORGED, `${where}: a forged line: ${JSON.stringify(line)}`);
    if (where === 'stdout')
      assert.match(line, EVENT[format]!, `${where}: not an event: ${JSON.stringify(line)}`);
  }
}

const ESCAPED_ESC: Record<string, string> = { pretty: '\\x1b[2J', logfmt: '\\\\x1b[2J', json: '\\u001b[2J' };

for (const format of ['pretty', 'logfmt', 'json'] as const) {
  for (const workers of [1, 0]) {
    const mode = workers > 0 ? 'cluster' : 'single';
    test(`--log-format ${format}, ${mode} mode: an uncaught exception${workers > 0 ? ', a leaving reason' : ''} and an access-log path forge nothing`, {
      timeout: 45_000,
    }, async (t) => {
      const port = await freePort();
      const srv = startApp(t, APP, {
        ...(workers > 0 ? { workers } : {}),
        bind: `tcp://127.0.0.1:${port}`,
        args: ['--log-format', format, '--access-log'],
      });
      const { out, err } = capture(srv);
      await until('the server to boot', () => (/\bserver\.booted\b/.test(out()) ? true : undefined), 20_000);
      // Raw control and non-ASCII bytes in a path: Node's HTTP parser refuses them (400), so the access
      // log only ever sees printable ASCII (the formatters escape a path all the same: unit tests).
      for (const bytes of [[0x1b], [0x9b], [0x00], [0x0d]]) {
        const refused = await rawRequest(port, [0x2f, 0x70, ...bytes, 0x71]);
        assert.match(refused, /^HTTP\/1\.1 400/, refused);
      }
      const answer = await rawRequest(port, [...Buffer.from('/p%1B%0Aq')]);
      assert.match(answer, /^HTTP\/1\.1 200/, answer);
      await until('the access-log line', () => (out().includes('/p%1B%0Aq') ? true : undefined), 10_000);
      const thrown = await rawRequest(port, [...Buffer.from('/throw')]);
      assert.match(thrown, /^HTTP\/1\.1 200/, thrown);
      if (workers > 0) {
        // The worker logs the exception, the master the leaving reason carrying its message.
        await until(
          'the leaving line',
          () => (/is leaving \(uncaught exception: boom/.test(out()) ? true : undefined),
          15_000,
        );
        await until(
          'the replacement',
          () => (out().split('worker.booted').length > 2 ? true : undefined),
          20_000,
        );
      } else {
        const exit = await srv.waitExit(15_000);
        assert.equal(exit.code, 1, 'an uncaught exception stops a single-mode server, as Node would');
        assert.match(out(), /uncaught exception: the server stops: boom/);
      }
      assertNoForgery(format, out(), 'stdout');
      assertNoForgery(format, err(), 'stderr');
      // The message is there, escaped (so the test looked at the right lines).
      assert.ok(out().includes('FORGED LINE'), out());
      assert.ok(out().includes(ESCAPED_ESC[format]!), `escaped ESC in: ${out().slice(-2000)}`);
    });
  }
}

test('--tag-output: every physical line of the app output is tagged, a bare CR ending one; colours kept', {
  timeout: 30_000,
}, async (t) => {
  const port = await freePort();
  const srv = startApp(t, path.join(FIXTURES, 'operator/progress.mjs'), {
    workers: 1,
    bind: `tcp://127.0.0.1:${port}`,
    args: ['--log-format', 'pretty', '--tag-output'],
  });
  const { out } = capture(srv);
  await until('the progress lines', () => (out().includes('done') ? true : undefined), 20_000);
  const lines = out()
    .split(/\r\n|\r|\n/)
    .filter((l) => l.endsWith(' {"stream":"stdout"}'));
  assert.deepEqual(
    lines.map((l) =>
      l.replace(/^\[\d\d:\d\d:\d\d\.\d{3}\] INFO: /, '').replace(/ \{"stream":"stdout"\}$/, ''),
    ),
    ['worker 0: progress 10%', 'worker 0: progress 50%', 'worker 0: done', 'worker 0: \x1b[32mcolour\x1b[0m'],
    out(),
  );
  assert.doesNotMatch(out(), /\r/, 'no CR left to take the terminal back over a tag');
});
