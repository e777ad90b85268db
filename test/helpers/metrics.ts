// Scraping /metrics in tests, reading samples back, and checking the text with Prometheus' own parser
// (promtool, from Debian's prometheus package: .ci/run installs it).
import { spawnSync } from 'node:child_process';
import * as http from 'node:http';

export interface Scrape {
  status: number;
  contentType: string;
  text: string;
}

/** GET /metrics (TCP port, or a unix socket path), bounded in time. */
export function scrape(
  target: number | string,
  options: { token?: string; path?: string; timeoutMs?: number } = {},
): Promise<Scrape> {
  return new Promise((resolve, reject) => {
    const where = typeof target === 'number' ? { host: '127.0.0.1', port: target } : { socketPath: target };
    const req = http.get(
      {
        ...where,
        path: options.path ?? '/metrics',
        agent: false,
        headers: options.token === undefined ? {} : { authorization: `Bearer ${options.token}` },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => {
          text += c;
        });
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, contentType: String(res.headers['content-type']), text }),
        );
        res.on('error', reject);
      },
    );
    req.setTimeout(options.timeoutMs ?? 5000, () => req.destroy(new Error('scrape: no answer in time')));
    req.on('error', reject);
  });
}

/** `name{labels}` → value, for every sample line. */
export function samples(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const i = line.lastIndexOf(' ');
    out.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return out;
}

/** Sum of the samples of `name` whose labels include every `key="value"` given. */
export function total(text: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  for (const [key, value] of samples(text)) {
    if (key !== name && !key.startsWith(`${name}{`)) continue;
    if (Object.entries(labels).every(([k, v]) => key.includes(`${k}="${v}"`))) sum += value;
  }
  return sum;
}

/** Lint complaints about prom-client's own default metric names (gauges named `_total`), not ours. */
const PROM_CLIENT_NAMES =
  /^nodejs_active_(handles|requests|resources)_total non-counter metrics should not have "_total" suffix$/;

/**
 * promtool check metrics: parse errors fail (exit 1); lint findings (exit 3) fail too, except the known
 * ones about prom-client's default metrics. Returns what promtool said.
 */
export function promtoolCheck(text: string): { ok: boolean; output: string } {
  const r = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8', timeout: 20_000 });
  if (r.error !== undefined) return { ok: false, output: `promtool could not run: ${r.error.message}` };
  const output = `${r.stdout}${r.stderr}`.trim();
  if (r.status === 0) return { ok: true, output };
  const findings = output.split('\n').filter((l) => l.trim() !== '');
  return { ok: r.status === 3 && findings.every((l) => PROM_CLIENT_NAMES.test(l.trim())), output };
}
