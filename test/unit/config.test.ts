import assert from 'node:assert/strict';
import * as os from 'node:os';
import { test } from 'node:test';
import { describeConfig } from '../../src/config/describe.js';
import { buildConfig, type CliOptions, type UserConfig } from '../../src/config/index.js';
import { RestartHistory, readTotals } from '../../src/restart/history.js';

const cwd = os.tmpdir();
const build = (cli: CliOptions = {}, file: UserConfig = {}, env: NodeJS.ProcessEnv = {}) =>
  buildConfig({
    app: 'app.mjs',
    cli,
    file,
    cwd,
    found: file === undefined ? undefined : { file: '/x/nserve.config.mjs', source: 'flag' },
    env,
  });

function rejects(fn: () => unknown, pattern: RegExp): void {
  assert.throws(fn, (err: Error & { code?: string }) => {
    assert.equal(err.code, 'ERR_NSERVE_INVALID_CONFIG', err.message);
    assert.match(err.message, pattern);
    assert.ok(!err.message.includes('\n'), 'one line');
    return true;
  });
}

// Every key: a bad value from the config file and from the flag, each naming the key, the value and what is valid.
const BAD: [keyof UserConfig & keyof CliOptions, unknown, string, RegExp][] = [
  ['port', 70000, '70000', /expected an integer from 0 to 65535/],
  ['workers', -1, '-1', /expected an integer from 0 to 256/],
  ['slots', 0, '0', /expected an integer from 1 to 256/],
  ['backlog', 1.5, '1.5', /expected an integer from 1 to 65535/],
  ['shutdownTimeout', 'soon', 'soon', /expected a number of seconds from 0 to 86400/],
  ['workerTimeout', -3, '-3', /expected a number of seconds/],
  // Workers check in every second: 0 (or 1.5) killed healthy workers every few ms.
  ['workerTimeout', 0, '0', /expected a number of seconds from 2 to 86400 \(workers check in every 1 s: /],
  ['workerTimeout', 1.5, '1.5', /expected a number of seconds from 2 to 86400 \(/],
  ['workerBootTimeout', 1e9, '1e9', /expected a number of seconds from 1 to 86400/],
  // 0 made every boot fail: "did not boot within 0 ms".
  [
    'workerBootTimeout',
    0,
    '0',
    /expected a number of seconds from 1 to 86400 \(a worker, or new code, needs time to boot/,
  ],
  ['hookTimeout', 'x', 'x', /expected a number of seconds/],
  [
    'hookTimeout',
    0,
    '0',
    /expected a number of seconds above 0, up to 86400 \(with 0 every async hook times out\)/,
  ],
  ['readyProbeTimeout', 0, '0', /expected a number of seconds above 0, up to 86400 \(/],
  ['drainGrace', '2s', '2s', /expected a number of seconds/],
  ['logLevel', 'loud', 'loud', /expected one of fatal, error, warn, info, debug, trace, silent/],
  ['leakPolicy', 'ignore', 'ignore', /expected one of close, warn, refuse/],
  ['environment', '', '', /expected a non-empty string/],
  ['pidfile', 42, '', /expected a non-empty string/],
  ['healthPath', 'healthz', 'healthz', /expected a URL path starting with \//],
  ['logFormat', 'xml', 'xml', /expected one of json, pretty, logfmt/],
  ['keepAliveTimeout', -1, '-1', /expected a number of seconds from 0 to 86400/],
  ['headersTimeout', 'long', 'long', /expected a number of seconds/],
  ['requestTimeout', '5m', '5m', /expected a number of seconds/],
];

test('lifetime totals from the hand-off: an unknown shape counts from zero, a known one carries on', () => {
  assert.deepEqual(readTotals('x'), {
    requests: 0,
    crashes: 0,
    crashesByWorker: {},
    restarts: { hot: 0, phased: 0 },
    memoryReplacements: 0,
  });
  const h = RestartHistory.fromHandoff([], {
    requests: 40,
    crashes: 1,
    crashesByWorker: { 1: 1, x: 5 },
    restarts: { hot: 2, phased: -1 },
  });
  assert.deepEqual(h.totals, {
    requests: 40,
    crashes: 1,
    crashesByWorker: { 1: 1 },
    restarts: { hot: 2, phased: 0 },
    memoryReplacements: 0,
  });
  h.begin('phased');
  h.workerGone(0, 10, true);
  assert.deepEqual(h.totalsToHandoff(5), {
    requests: 55,
    crashes: 2,
    crashesByWorker: { 0: 1, 1: 1 },
    restarts: { hot: 2, phased: 1 },
    memoryReplacements: 0,
  });
});

for (const [key, fileValue, flagValue, valid] of BAD) {
  test(`config key ${key}: a bad value names the key, the value and what is valid`, () => {
    rejects(
      () => build({}, { [key]: fileValue } as UserConfig),
      new RegExp(`config key ${key}: ${escapeRe(JSON.stringify(fileValue))}: ${valid.source}`),
    );
    if (flagValue !== '') {
      const flag = `--${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
      rejects(
        () => build({ [key]: flagValue } as CliOptions),
        new RegExp(`${flag}: ${escapeRe(JSON.stringify(flagValue))}: ${valid.source}`),
      );
    }
  });
}

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

test('config key bind: a bad URI and a non-string', () => {
  assert.throws(() => build({}, { bind: 'http://x' }), /invalid bind URI "http:\/\/x"/);
  rejects(
    () => build({}, { bind: [42 as unknown as string] }),
    /config key bind: 42: expected a bind URI string/,
  );
});

test('config key accessLog must be a boolean', () => {
  rejects(
    () => build({}, { accessLog: 'yes' as unknown as boolean }),
    /config key accessLog: "yes": expected true or false/,
  );
});

test('hooks must be functions', () => {
  rejects(
    () => build({}, { onRestart: ['nope' as unknown as () => void] }),
    /config key onRestart: "string": expected a function or an array of functions/,
  );
});

test('the environment: PORT and WEB_CONCURRENCY, bad values named', () => {
  const c = build({}, {}, { PORT: '8080', WEB_CONCURRENCY: '3' });
  assert.deepEqual(
    c.binds.map((b) => b.uri),
    ['tcp://0.0.0.0:8080'],
  );
  assert.equal(c.workers, 3);
  assert.equal(c.sources.workers, 'env');
  rejects(
    () => build({}, {}, { WEB_CONCURRENCY: 'lots' }),
    /environment WEB_CONCURRENCY: "lots": expected an integer/,
  );
  rejects(
    () => build({}, {}, { PORT: 'http' }),
    /environment PORT: "http": expected an integer from 0 to 65535/,
  );
  // a bind from a flag or the file wins over PORT; a PORT nserve itself published is not the user's
  assert.deepEqual(
    build({ bind: ['tcp://127.0.0.1:1'] }, {}, { PORT: '8080' }).binds.map((b) => b.uri),
    ['tcp://127.0.0.1:1'],
  );
  assert.deepEqual(
    build({}, {}, { PORT: '8080', NSERVE_PORTS: '8080' }).binds.map((b) => b.uri),
    ['tcp://0.0.0.0:3000'],
  );
});

test("args: the app's arguments, flag (after --) over file, an array of strings or one line saying so", () => {
  assert.deepEqual(build().args, []);
  assert.deepEqual(build({}, { args: ['start', '-p', '1'] }).args, ['start', '-p', '1']);
  const c = build({ args: [] }, { args: ['start'] });
  assert.deepEqual(c.args, [], 'a bare -- gives the app no arguments');
  assert.deepEqual(describeConfig(c).args, { value: [], source: 'flag' });
  for (const bad of ['start', ['start', 1], { a: 1 }])
    rejects(
      () => build({}, { args: bad as unknown as string[] }),
      /^invalid config key args: .*: expected an array of strings, like \["start", "--hostname", "0\.0\.0\.0"\]$/,
    );
});

test('precedence and sources: flag over file over environment over default', () => {
  const c = build(
    { workers: '4' },
    { workers: 2, drainGrace: 0.25, logLevel: 'warn' },
    { WEB_CONCURRENCY: '8' },
  );
  assert.equal(c.workers, 4);
  assert.equal(c.drainGraceMs, 250);
  const d = describeConfig(c);
  assert.deepEqual(d.workers, { value: 4, source: 'flag' });
  assert.deepEqual(d.drainGrace, { value: 0.25, source: 'file' });
  assert.deepEqual(d.logLevel, { value: 'warn', source: 'file' });
  assert.deepEqual(d.backlog, { value: 1024, source: 'default' });
  assert.deepEqual(d.slots, { value: 4, source: 'default' }, 'slots follow the worker count');
});

test('the remaining keys: app, directory, control, state and redirection, each named with what is valid', () => {
  rejects(
    () => buildConfig({ app: undefined, cli: {}, file: { app: '' }, cwd, env: {} }),
    /config key app: "": expected a non-empty string/,
  );
  assert.throws(
    () => build({ directory: '/nonexistent/nserve-dir' }),
    /invalid --directory: \/nonexistent\/nserve-dir is not a directory/,
  );
  rejects(
    () => build({}, { directory: 7 as unknown as string }),
    /config key directory: 7: expected a non-empty string/,
  );
  for (const key of ['state', 'redirectStdout', 'redirectStderr'] as const) {
    rejects(() => build({}, { [key]: '' }), new RegExp(`config key ${key}: "": expected a non-empty string`));
  }
  assert.throws(() => build({ controlUrl: 'http://x' }), /--control-url/);
  assert.throws(
    () => build({ controlUrl: 'tcp://127.0.0.1:9000' }),
    /--control-url .*token|token.*--control-url|--control-token/,
  );
  rejects(() => build({}, { controlToken: 42 as unknown as string }), /controlToken: expected a string/);
});

test('timeouts: 0 where it means "none" or "at once"; the least that works where 0 cannot', () => {
  const zero = build(
    {},
    {
      shutdownTimeout: 0,
      drainGrace: 0,
      longLivedGrace: 0,
      shutdownDelay: 0,
      keepAliveTimeout: 0,
      headersTimeout: 0,
      requestTimeout: 0,
    },
  );
  assert.equal(zero.shutdownTimeoutMs, 0);
  assert.equal(zero.drainGraceMs, 0);
  assert.equal(zero.longLivedGraceMs, 0);
  const least = build({
    workerTimeout: '2',
    workerBootTimeout: '1',
    hookTimeout: '0.1',
    readyProbeTimeout: '0.1',
  });
  assert.equal(least.workerTimeoutMs, 2000);
  assert.equal(least.workerBootTimeoutMs, 1000);
  assert.equal(least.hookTimeoutMs, 100);
  assert.equal(least.readyProbeTimeoutMs, 100);
});

test('the control server and the metrics listener each need an address of their own', () => {
  assert.throws(
    () => build({ port: '40500', controlUrl: 'tcp://127.0.0.1:40500', controlToken: 'x' }),
    /invalid --control-url: "tcp:\/\/127\.0\.0\.1:40500": expected an address of its own: the --bind tcp:\/\/0\.0\.0\.0:40500 is there/,
  );
  assert.throws(
    () => build({ bind: ['unix:///tmp/nserve-x.sock'], controlUrl: 'unix:///tmp/nserve-x.sock' }),
    /invalid --control-url: "unix:\/\/\/tmp\/nserve-x\.sock": expected an address of its own/,
  );
  assert.throws(
    () =>
      build({
        port: '40501',
        controlUrl: 'tcp://127.0.0.1:40502',
        controlToken: 'x',
        metricsUrl: 'tcp://127.0.0.1:40502',
      }),
    /invalid --metrics-url: "tcp:\/\/127\.0\.0\.1:40502": expected an address of its own: --control-url tcp:\/\/127\.0\.0\.1:40502 is there/,
  );
  // IPv6 sockets are IPV6_V6ONLY: [::]:P beside 127.0.0.1:P is fine; so are different ports, or port 0.
  build({ bind: ['tcp://[::]:40504'], controlUrl: 'tcp://127.0.0.1:40504', controlToken: 'x' });
  build({
    port: '40501',
    controlUrl: 'tcp://127.0.0.1:40502',
    controlToken: 'x',
    metricsUrl: 'tcp://127.0.0.1:40503',
  });
  build({ port: '0', metricsUrl: 'tcp://127.0.0.1:0' });
});
