import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseBindUri } from '../../src/listen/binder.js';

test('parseBindUri accepts tcp IPv4, IPv6, localhost and unix with mode', () => {
  assert.deepEqual(parseBindUri('tcp://127.0.0.1:3000'), {
    kind: 'tcp',
    uri: 'tcp://127.0.0.1:3000',
    family: 'tcp4',
    host: '127.0.0.1',
    port: 3000,
  });
  assert.deepEqual(parseBindUri('tcp://[::1]:0'), {
    kind: 'tcp',
    uri: 'tcp://[::1]:0',
    family: 'tcp6',
    host: '::1',
    port: 0,
  });
  assert.equal((parseBindUri('tcp://localhost:80') as { host: string }).host, '127.0.0.1');
  assert.deepEqual(parseBindUri('unix:///run/a.sock?mode=0660'), {
    kind: 'unix',
    uri: 'unix:///run/a.sock?mode=0660',
    path: '/run/a.sock',
    mode: 0o660,
  });
});

test('parseBindUri rejects bad input with a message naming it and ERR_NSERVE_INVALID_BIND', () => {
  const cases: [string, RegExp][] = [
    ['http://x:1', /expected tcp:\/\/HOST:PORT/],
    ['tcp://127.0.0.1', /expected tcp:\/\/HOST:PORT/],
    ['tcp://127.0.0.1:99999', /port 99999 is out of range/],
    ['tcp://300.1.1.1:80', /not an IPv4 address/],
    ['tcp://[zz]:80', /expected tcp|not an IPv6/],
    ['unix://relative.sock', /must be absolute/],
    ['unix:///a.sock?mode=999', /not an octal permission/],
    ['unix:///a.sock?user=x', /unknown parameter "user"/],
    [`unix:///${'x'.repeat(200)}`, /longer than 107 bytes/],
  ];
  for (const [uri, re] of cases) {
    assert.throws(
      () => parseBindUri(uri),
      (err: Error & { code?: string }) =>
        err.code === 'ERR_NSERVE_INVALID_BIND' && re.test(err.message) && err.message.includes(uri),
      uri,
    );
  }
});
