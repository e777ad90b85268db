import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseFromWorker } from '../../src/cluster/protocol.js';
import { parseBindUri } from '../../src/listen/binder.js';
import { type CertReload, describeReload, mergeVerdicts, tlsStats } from '../../src/listen/tls.js';

test('parseBindUri reads ssl:// with Puma parameters, min_version and alpn (defaults: none, TLSv1.2, http/1.1)', () => {
  assert.deepEqual(parseBindUri('ssl://127.0.0.1:8443?cert=/c.pem&key=/k.pem'), {
    kind: 'tcp',
    uri: 'ssl://127.0.0.1:8443?cert=/c.pem&key=/k.pem',
    family: 'tcp4',
    host: '127.0.0.1',
    port: 8443,
    tls: {
      cert: '/c.pem',
      key: '/k.pem',
      ca: undefined,
      verifyMode: 'none',
      minVersion: 'TLSv1.2',
      alpn: ['http/1.1'],
    },
  });
  const full = parseBindUri(
    'ssl://[::1]:0?cert=/c.pem&key=/k.pem&ca=/ca.pem&verify_mode=force_peer&min_version=TLSv1.3&alpn=h2,http/1.1',
  );
  assert.equal(full.kind === 'tcp' && full.family, 'tcp6');
  assert.deepEqual(full.kind === 'tcp' && full.tls, {
    cert: '/c.pem',
    key: '/k.pem',
    ca: '/ca.pem',
    verifyMode: 'force_peer',
    minVersion: 'TLSv1.3',
    alpn: ['h2', 'http/1.1'],
  });
});

test('parseBindUri refuses bad ssl:// binds with one message naming the parameter', () => {
  const cases: [string, RegExp][] = [
    ['ssl://127.0.0.1:1', /needs \?cert=/],
    ['ssl://127.0.0.1:1?cert=/c.pem', /missing parameter "key"/],
    ['ssl://127.0.0.1:1?key=/k.pem', /missing parameter "cert"/],
    ['ssl://127.0.0.1:1?cert=/c&key=/k&foo=1', /unknown parameter "foo"/],
    ['ssl://127.0.0.1:1?cert=/c&cert=/d&key=/k', /"cert" is given twice/],
    ['ssl://127.0.0.1:1?cert=c.pem&key=/k', /cert must be an absolute path/],
    ['ssl://127.0.0.1:1?cert=/c&key=/k&verify_mode=all', /verify_mode "all"/],
    ['ssl://127.0.0.1:1?cert=/c&key=/k&min_version=TLSv1.1', /min_version "TLSv1.1"/],
    ['ssl://127.0.0.1:1?cert=/c&key=/k&alpn=spdy', /alpn "spdy"/],
    ['ssl://nohost?cert=/c&key=/k', /expected/],
  ];
  for (const [uri, re] of cases) {
    assert.throws(
      () => parseBindUri(uri),
      (err: Error & { code?: string }) => {
        assert.equal(err.code, 'ERR_NSERVE_INVALID_BIND', uri);
        assert.match(err.message, re, uri);
        assert.ok(!err.message.includes('\n'), uri);
        return true;
      },
    );
  }
});

test('parseFromWorker checks certificate verdicts field by field', () => {
  const cert = {
    subject: 'CN=a',
    issuer: 'CN=a',
    serial: '01',
    validFrom: '2026-01-01T00:00:00.000Z',
    validTo: '2027-01-01T00:00:00.000Z',
    fingerprint256: 'AA',
  };
  assert.deepEqual(parseFromWorker({ t: 'certs', id: 3, binds: [{ uri: 'ssl://x', ok: true, cert }] }), {
    t: 'certs',
    id: 3,
    binds: [{ uri: 'ssl://x', ok: true, cert }],
  });
  const bad: unknown[] = [
    { t: 'certs', id: -1, binds: [] },
    { t: 'certs', id: 1.5, binds: [] },
    { t: 'certs', id: 1 },
    { t: 'certs', id: 1, binds: [{ uri: 'x' }] },
    { t: 'certs', id: 1, binds: [{ uri: 'x', ok: false, error: 7 }] },
    { t: 'certs', id: 1, binds: [{ uri: 'x', ok: true, cert: { subject: 'CN=a' } }] },
    { t: 'certs', id: 1, binds: Array.from({ length: 65 }, () => ({ uri: 'x', ok: true })) },
    { t: 'certs', id: 1, binds: [{ uri: 'x'.repeat(2000), ok: true }] },
  ];
  for (const m of bad) assert.equal(typeof parseFromWorker(m), 'string', JSON.stringify(m).slice(0, 80));
});

test('verdicts: a bind refused by any worker is refused; the line says which and why', () => {
  const merged = mergeVerdicts([
    [{ uri: 'ssl://a?cert=/c', ok: true }],
    [{ uri: 'ssl://a?cert=/c', ok: false, error: 'bad file /c' }],
  ]);
  assert.deepEqual(merged, [{ uri: 'ssl://a?cert=/c', ok: false, error: 'bad file /c' }]);
  const report: CertReload = { id: 4, at: '', ok: false, binds: merged, workers: [] };
  assert.equal(
    describeReload(report),
    'reload-certs #4 refused: ssl://a: refused, the old certificate keeps serving: bad file /c',
  );
  const stats = tlsStats(
    [
      {
        uri: 'ssl://a',
        cert: {
          subject: 'CN=a',
          issuer: 'CN=a',
          serial: '01',
          validFrom: new Date().toISOString(),
          validTo: new Date(Date.now() + 10.5 * 86_400_000).toISOString(),
          fingerprint256: 'AA',
        },
      },
    ],
    undefined,
  );
  assert.equal(stats.binds[0]!.daysLeft, 10);
  assert.equal(stats.lastReload, null);
});
