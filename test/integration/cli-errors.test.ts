// Every bad input gets one line naming the input and what is valid, and exit code 2.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { after, test } from 'node:test';
import { killAll, runNserve, startNserve, tmpDir } from '../helpers/server.js';

after(killAll);

async function expectUsageError(args: string[], pattern: RegExp): Promise<void> {
  const r = await runNserve(args);
  assert.equal(r.code, 2, `exit code for ${args.join(' ')}: stderr=${r.stderr}`);
  const lines = r.stderr.trim().split('\n');
  assert.match(lines[0] ?? '', pattern);
  assert.match(lines[0] ?? '', /^nserve: error: /);
}

test('malformed bind URI', () =>
  expectUsageError(
    ['start', 'examples/hello.mjs', '--bind', 'http://x:1'],
    /invalid bind URI "http:\/\/x:1": expected tcp:\/\/HOST:PORT/,
  ));

test('bind host that is not an address', () =>
  expectUsageError(
    ['start', 'examples/hello.mjs', '--bind', 'tcp://exa mple:80'],
    /invalid bind URI "tcp:\/\/exa mple:80"/,
  ));

test('port out of range in a bind URI', () =>
  expectUsageError(
    ['start', 'examples/hello.mjs', '--bind', 'tcp://127.0.0.1:70000'],
    /port 70000 is out of range 0-65535/,
  ));

test('--port out of range', () =>
  expectUsageError(
    ['start', 'examples/hello.mjs', '--port', '-5'],
    /invalid --port: "-5": expected an integer from 0 to 65535/,
  ));

test('relative unix socket path', () =>
  expectUsageError(
    ['start', 'examples/hello.mjs', '--bind', 'unix://rel.sock'],
    /socket path must be absolute/,
  ));

test('missing app file', () =>
  expectUsageError(['start', 'nope/missing.mjs'], /app file not found: .*nope\/missing\.mjs/));

test('missing APP argument', () => expectUsageError(['start'], /missing APP/));

test('app module with no usable export', async (t) => {
  const dir = tmpDir(t);
  fs.writeFileSync(path.join(dir, 'bad.mjs'), 'export const x = 1;\n');
  await expectUsageError(
    ['start', path.join(dir, 'bad.mjs'), '--bind', 'tcp://127.0.0.1:0'],
    /exports no usable handler: default-export a \(req, res\)/,
  );
});

test('app that throws at load', async (t) => {
  const dir = tmpDir(t);
  fs.writeFileSync(path.join(dir, 'throws.mjs'), "throw new Error('kaboom at load');\n");
  await expectUsageError(
    ['start', path.join(dir, 'throws.mjs'), '--bind', 'tcp://127.0.0.1:0'],
    /failed to load: kaboom at load/,
  );
});

test('address in use names the address', async (t) => {
  const blocker = net.createServer();
  await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
  t.after(() => blocker.close());
  const port = (blocker.address() as net.AddressInfo).port;
  await expectUsageError(
    ['start', 'examples/hello.mjs', '--bind', `tcp://127.0.0.1:${port}`],
    new RegExp(`address already in use: tcp://127\\.0\\.0\\.1:${port}`),
  );
});

test('unknown command', () => expectUsageError(['frobnicate'], /unknown command 'frobnicate'/));

test('unknown option', () =>
  expectUsageError(['start', 'examples/hello.mjs', '--frob'], /unknown option '--frob'/));

test('bad worker count', () =>
  expectUsageError(
    ['start', 'examples/hello.mjs', '-w', 'many'],
    /invalid --workers: "many": expected an integer from 0 to 256/,
  ));

test('bad shutdown timeout', () =>
  expectUsageError(
    ['start', 'examples/hello.mjs', '--shutdown-timeout', 'soon'],
    /invalid --shutdown-timeout: "soon": expected a number of seconds/,
  ));

for (const [flag, value, valid] of [
  [
    '--worker-boot-timeout',
    '0',
    /expected a number of seconds from 1 to 86400 \(a worker, or new code, needs time to boot/,
  ],
  ['--worker-timeout', '0', /expected a number of seconds from 2 to 86400 \(workers check in every 1 s: /],
  ['--worker-timeout', '1', /expected a number of seconds from 2 to 86400/],
] as const) {
  test(`${flag} ${value} is refused (it could never work: boots failed, healthy workers were killed)`, () =>
    expectUsageError(
      ['start', 'examples/hello.mjs', '-w', '1', '--bind', 'tcp://127.0.0.1:0', flag, value],
      new RegExp(`^nserve: error: invalid ${flag}: "${value}": ${valid.source}`),
    ));
}

test('directory that does not exist', () =>
  expectUsageError(
    ['start', 'examples/hello.mjs', '--directory', '/nonexistent/dir'],
    /invalid --directory: \/nonexistent\/dir is not a directory/,
  ));

test('--version prints the version and exits 0', async () => {
  const r = await runNserve(['--version']);
  assert.equal(r.code, 0);
});

test('missing app file in cluster mode: the same one-line error, no worker started', () =>
  expectUsageError(['start', 'nope/missing.mjs', '-w', '2'], /app file not found: .*nope\/missing\.mjs/));

test('an app that fails to load leaves no unix socket file behind', async (t) => {
  const dir = tmpDir(t);
  fs.writeFileSync(path.join(dir, 'throws.mjs'), "throw new Error('kaboom at load');\n");
  const sock = path.join(dir, 'app.sock');
  await expectUsageError(
    ['start', path.join(dir, 'throws.mjs'), '--bind', `unix://${sock}`],
    /failed to load: kaboom at load/,
  );
  assert.equal(fs.existsSync(sock), false);
});

test('a second cluster on a port a cluster already serves: address in use, not a silent SO_REUSEPORT join', async (t) => {
  const probe = net.createServer();
  await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
  const port = (probe.address() as net.AddressInfo).port;
  await new Promise<void>((r) => probe.close(() => r()));
  const first = startNserve(['start', 'examples/hello.mjs', '-w', '1', '--bind', `tcp://127.0.0.1:${port}`]);
  t.after(() => first.kill());
  await first.port(20000);
  await expectUsageError(
    ['start', 'examples/hello.mjs', '-w', '1', '--bind', `tcp://127.0.0.1:${port}`],
    new RegExp(`address already in use: tcp://127\\.0\\.0\\.1:${port}`),
  );
});

test('a unix bind path that is a regular file: named as such, and the file is left alone', async (t) => {
  const dir = tmpDir(t);
  const file = path.join(dir, 'data.sock');
  fs.writeFileSync(file, 'keep me');
  await expectUsageError(
    ['start', 'examples/hello.mjs', '--bind', `unix://${file}`],
    new RegExp(
      `cannot bind unix://${file}: ${file} exists and is not a socket: remove it or choose another --bind`,
    ),
  );
  assert.equal(fs.readFileSync(file, 'utf8'), 'keep me');
});

test('-C naming a directory: the config file must be a file', async (t) => {
  const dir = tmpDir(t);
  await expectUsageError(
    ['start', 'examples/hello.mjs', '-C', dir],
    /config file .* is not a file: -C takes a config file \(nserve\.config\.mjs, \.js, \.cjs or \.json\)/,
  );
});

test('a dotenv line that is not NAME=value is refused, not turned into a variable named "FOO\\n"', async (t) => {
  const dir = tmpDir(t);
  fs.writeFileSync(path.join(dir, '.env'), 'FOO\n=bar\nGOOD=1\n');
  await expectUsageError(
    ['start', 'examples/hello.mjs', '--port', '0', '--dotenv', path.join(dir, '.env')],
    /invalid env file .*\.env \(--dotenv \/ envFile\): "FOO" is not a variable name \(each line must be NAME=value\)/,
  );
});

test('a bad value in a config file names the file', async (t) => {
  const dir = tmpDir(t);
  const file = path.join(dir, 'bind.json');
  fs.writeFileSync(file, JSON.stringify({ bind: ['tcp://127.0.0.1:99999'] }));
  await expectUsageError(
    ['start', 'examples/hello.mjs', '-C', file],
    new RegExp(
      `invalid config key bind \\(in ${file}\\): invalid bind URI "tcp://127\\.0\\.0\\.1:99999": port 99999 is out of range`,
    ),
  );
  fs.writeFileSync(file, JSON.stringify({ workers: 'x' }));
  await expectUsageError(
    ['start', 'examples/hello.mjs', '-C', file],
    new RegExp(`invalid config key workers \\(in ${file}\\): "x": expected an integer from 0 to 256`),
  );
});
