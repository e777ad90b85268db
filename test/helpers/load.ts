// A counting HTTP load generator for restart tests: every request is accounted for, by kind of failure.
// (wrk/autocannon report totals; these tests need to know which request failed how, and what answered.)
import * as http from 'node:http';

export interface Sample {
  /** When the request was sent. */
  started: number;
  /** When its response ended. */
  at: number;
  ms: number;
  version: string;
  pid: number;
}

export interface LoadResult {
  ok: number;
  failed: number;
  byKind: Record<string, number>;
  errors: string[];
  samples: Sample[];
  maxMs: number;
  p50: number;
  p99: number;
}

export interface LoadOptions {
  port: number;
  host?: string;
  keepAlive?: number;
  newConnection?: number;
  post16k?: number;
  path?: string;
  timeoutMs?: number;
}

const BODY = Buffer.alloc(16 * 1024, 'x');

export class Load {
  private running = true;
  private readonly loops: Promise<void>[] = [];
  private readonly agents: http.Agent[] = [];
  readonly samples: Sample[] = [];
  readonly byKind: Record<string, number> = {};
  readonly errors: string[] = [];
  ok = 0;

  constructor(private readonly options: LoadOptions) {
    for (let i = 0; i < (options.keepAlive ?? 0); i++) {
      const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
      this.agents.push(agent);
      this.loops.push(this.loop({ agent, method: 'GET' }));
    }
    for (let i = 0; i < (options.newConnection ?? 0); i++)
      this.loops.push(this.loop({ agent: false, method: 'GET' }));
    for (let i = 0; i < (options.post16k ?? 0); i++)
      this.loops.push(this.loop({ agent: false, method: 'POST' }));
  }

  private async loop(o: { agent: http.Agent | false; method: string }): Promise<void> {
    while (this.running) await this.one(o);
  }

  private one(o: { agent: http.Agent | false; method: string }): Promise<void> {
    const started = Date.now();
    return new Promise<void>((resolve) => {
      let done = false;
      const fail = (kind: string, detail: string): void => {
        if (done) return;
        done = true;
        this.byKind[kind] = (this.byKind[kind] ?? 0) + 1;
        if (this.errors.length < 50) this.errors.push(`${kind}: ${detail} after ${Date.now() - started} ms`);
        resolve();
      };
      const headers: http.OutgoingHttpHeaders = o.agent === false ? { connection: 'close' } : {};
      if (o.method === 'POST') headers['content-type'] = 'application/octet-stream';
      const req = http.request(
        {
          host: this.options.host ?? '127.0.0.1',
          port: this.options.port,
          path: this.options.path ?? '/',
          method: o.method,
          agent: o.agent,
          headers,
          timeout: this.options.timeoutMs ?? 10000,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('error', (err) => fail('reset', err.message));
          res.on('end', () => {
            if (done) return;
            const status = res.statusCode ?? 0;
            if (status < 200 || status > 299) return fail('non2xx', `status ${status}`);
            done = true;
            this.ok++;
            let body: { version?: string; pid?: number } = {};
            try {
              body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as typeof body;
            } catch {
              // not a versioned fixture
            }
            this.samples.push({
              started,
              at: Date.now(),
              ms: Date.now() - started,
              version: String(body.version ?? ''),
              pid: body.pid ?? 0,
            });
            resolve();
          });
        },
      );
      req.on('timeout', () => {
        fail('timeout', 'no response');
        req.destroy();
      });
      req.on('error', (err: NodeJS.ErrnoException) => {
        const kind =
          err.code === 'ECONNREFUSED'
            ? 'refused'
            : err.code === 'ECONNRESET' || err.message === 'socket hang up' || err.code === 'EPIPE'
              ? 'reset'
              : (err.code ?? 'error');
        fail(kind, `${err.code ?? ''} ${err.message}`);
      });
      if (o.method === 'POST') req.end(BODY);
      else req.end();
    });
  }

  async stop(): Promise<LoadResult> {
    this.running = false;
    await Promise.all(this.loops);
    for (const a of this.agents) a.destroy();
    const sorted = this.samples.map((s) => s.ms).sort((a, b) => a - b);
    const q = (p: number): number => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? 0;
    const failed = Object.values(this.byKind).reduce((a, b) => a + b, 0);
    return {
      ok: this.ok,
      failed,
      byKind: { ...this.byKind },
      errors: [...this.errors],
      samples: this.samples,
      maxMs: sorted.at(-1) ?? 0,
      p50: q(0.5),
      p99: q(0.99),
    };
  }
}

/** One GET, body parsed as JSON. */
export function getJson(
  port: number,
  path = '/',
  host = '127.0.0.1',
): Promise<{ status: number; body: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host, port, path, agent: false, timeout: 10000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        try {
          resolve({
            status: res.statusCode ?? 0,
            body: JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>,
          });
        } catch (err) {
          reject(err);
        }
      });
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}

/** The assertion every restart test makes: not one request failed, of any kind. */
export function assertNoFailedRequests(result: LoadResult): void {
  if (result.failed === 0) return;
  throw new Error(
    `${result.failed} failed requests: ${JSON.stringify(result.byKind)} ${result.errors.slice(0, 5).join('; ')}`,
  );
}
