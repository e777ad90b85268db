// Throughput load generators: wrk (preferred: C, one thread, little CPU per request) or autocannon (the
// devDependency, used when wrk is not installed: `apt-get install wrk`). Both run as a child process so
// the bench's own event loop stays out of the measurement.
import { execFile } from 'node:child_process';
import * as path from 'node:path';
import { wrkPath } from './machine.js';
import { benchRequire } from './setup.js';

export interface LoadgenResult {
  requests: number;
  seconds: number;
  rps: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  errors: number;
  errorDetail: string;
  non2xx: number;
}

export interface LoadgenSpec {
  port: number;
  connections: number;
  seconds: number;
  close: boolean;
}

export type LoadgenName = 'wrk' | 'autocannon';

export function pickLoadgen(wanted: string | undefined): LoadgenName {
  if (wanted === 'autocannon') return 'autocannon';
  if (wanted !== undefined && wanted !== 'wrk')
    throw new Error(`--loadgen: wrk or autocannon, not ${wanted}`);
  if (wrkPath()) return 'wrk';
  if (wanted === 'wrk')
    throw new Error('wrk is not installed (apt-get install wrk), or use --loadgen autocannon');
  process.stderr.write(
    'bench: wrk not found (apt-get install wrk): falling back to autocannon, which needs more CPU per request on the\n' +
      '       same 2 cores as the servers, so its figures are lower and not comparable with wrk figures or BASELINES.md\n',
  );
  return 'autocannon';
}

function run(file: string, args: string[], timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(file, args, { timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${path.basename(file)} failed: ${err.message}\n${stderr}`));
      else resolve(stdout);
    });
  });
}

function durationMs(text: string): number {
  const m = /^([\d.]+)(us|ms|s|m)$/.exec(text.trim());
  if (!m) return Number.NaN;
  const v = Number(m[1]);
  return m[2] === 'us' ? v / 1000 : m[2] === 'ms' ? v : m[2] === 's' ? v * 1000 : v * 60000;
}

export function parseWrk(out: string): LoadgenResult {
  const total = /(\d+) requests in ([\d.]+)(\w+),/.exec(out);
  const requests = total ? Number(total[1]) : 0;
  const seconds = total ? durationMs(`${total[2]}${total[3]}`) / 1000 : Number.NaN;
  const pct = (p: string): number => {
    const m = new RegExp(`^\\s*${p}%\\s+(\\S+)`, 'm').exec(out);
    return m ? durationMs(m[1]!) : Number.NaN;
  };
  const maxM = /Latency\s+\S+\s+\S+\s+(\S+)/.exec(out);
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(out);
  const rps = /Requests\/sec:\s+([\d.]+)/.exec(out);
  const errs = sock ? sock.slice(1, 5).map(Number) : [0, 0, 0, 0];
  return {
    requests,
    seconds,
    rps: rps ? Number(rps[1]) : requests / seconds,
    p50Ms: pct('50'),
    p99Ms: pct('99'),
    maxMs: maxM ? durationMs(maxM[1]!) : Number.NaN,
    // wrk counts a connection the server closes after a `Connection: close` reply as a read error at times;
    // report them, do not hide them.
    errors: errs.reduce((a, b) => a + b, 0),
    errorDetail: sock ? `connect ${errs[0]}, read ${errs[1]}, write ${errs[2]}, timeout ${errs[3]}` : '',
    non2xx: non2xx ? Number(non2xx[1]) : 0,
  };
}

export async function runLoad(gen: LoadgenName, spec: LoadgenSpec): Promise<LoadgenResult> {
  const url = `http://127.0.0.1:${spec.port}/`;
  const limit = (spec.seconds + 30) * 1000;
  if (gen === 'wrk') {
    // wrk takes whole seconds only
    const args = ['-t1', `-c${spec.connections}`, `-d${Math.max(1, Math.round(spec.seconds))}s`, '--latency'];
    if (spec.close) args.push('-H', 'Connection: close');
    return parseWrk(await run(wrkPath()!, [...args, url], limit));
  }
  const args = [
    benchRequire.resolve('autocannon/autocannon.js'),
    '-c',
    String(spec.connections),
    '-d',
    String(spec.seconds),
    '-j',
  ];
  if (spec.close) args.push('-H', 'Connection=close');
  const out = await run(process.execPath, [...args, url], limit);
  const r = JSON.parse(out) as {
    duration: number;
    errors: number;
    timeouts: number;
    non2xx: number;
    latency: { p50: number; p99: number; max: number };
    requests: { total: number };
  };
  return {
    requests: r.requests.total,
    seconds: r.duration,
    rps: r.requests.total / r.duration,
    p50Ms: r.latency.p50,
    p99Ms: r.latency.p99,
    maxMs: r.latency.max,
    errors: r.errors + r.timeouts,
    errorDetail: `errors ${r.errors}, timeouts ${r.timeouts}`,
    non2xx: r.non2xx,
  };
}
