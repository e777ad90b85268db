// A counting HTTP load generator for the restart tests and the restart benchmark (bench/restart.ts):
// every request is accounted for, with its start and end time, how it failed, and which code (version,
// pid) answered the ones that succeeded. wrk and autocannon only report totals and reconnect silently;
// across a restart we need to know which request failed, how and when.
import * as http from 'node:http';
import * as https from 'node:https';
import { now } from './logged-process.js';

/** Puma's restart test posts 16,256-byte bodies; so do we. */
export const POST_BYTES = 16256;
const BODY = Buffer.alloc(POST_BYTES, 'x');

export type ClientKind = 'keepalive' | 'newconn' | 'post';

/** A request that got a 2xx answer. Times are now() (monotonic ms). */
export interface Done {
  start: number;
  end: number;
  client: ClientKind;
  version: string;
  pid: number;
}

export interface Failure {
  start: number;
  end: number;
  client: ClientKind;
  kind: string;
  detail: string;
}

export interface LoadOptions {
  port: number;
  host?: string;
  path?: string;
  /** Clients on one kept-alive connection each. */
  keepAlive?: number;
  /** Clients that open a new connection per request (`Connection: close`). */
  newConnection?: number;
  /** Clients that POST POST_BYTES bodies, a new connection per request. */
  post?: number;
  /** A request with no answer by then counts as a `timeout` failure (default 10 s). */
  timeoutMs?: number;
  /** HTTPS: the certificates (PEM) the server's certificate must chain to. */
  tls?: { ca: (string | Buffer)[] };
}

export interface LoadResult {
  ok: number;
  failed: number;
  byKind: Record<string, number>;
  done: Done[];
  failures: Failure[];
  maxMs: number;
  p50: number;
  p99: number;
}

interface RoundWaiter {
  since: number;
  rounds: number;
  resolve: () => void;
}

/** Loads not stopped yet: killAll (helpers/server.ts) halts them, so a failed test's load cannot keep its file running. */
export const liveLoads = new Set<Load>();

export class Load {
  private running = true;
  private readonly loops: Promise<void>[] = [];
  private readonly agents: http.Agent[] = [];
  readonly done: Done[] = [];
  readonly failures: Failure[] = [];
  readonly startedAt = now();
  stoppedAt = 0;
  /** Per client: start times of its finished requests (answered or failed), for roundsSince. */
  private readonly finished: number[][] = [];
  private roundWaiters: RoundWaiter[] = [];
  private versionWaiters: { version: string; after: number; resolve: (d: Done) => void }[] = [];

  constructor(private readonly options: LoadOptions) {
    liveLoads.add(this);
    for (let i = 0; i < (options.keepAlive ?? 0); i++) {
      const agent =
        options.tls === undefined
          ? new http.Agent({ keepAlive: true, maxSockets: 1 })
          : new https.Agent({ keepAlive: true, maxSockets: 1, ca: options.tls.ca });
      this.agents.push(agent);
      this.loops.push(this.loop('keepalive', agent));
    }
    for (let i = 0; i < (options.newConnection ?? 0); i++) this.loops.push(this.loop('newconn', false));
    for (let i = 0; i < (options.post ?? 0); i++) this.loops.push(this.loop('post', false));
  }

  private async loop(client: ClientKind, agent: http.Agent | false): Promise<void> {
    const starts: number[] = [];
    this.finished.push(starts);
    while (this.running) {
      const start = now();
      await this.one(client, agent, start);
      starts.push(start);
      this.checkRounds();
    }
  }

  /** Resolves with the first response from `version` to a request sent at or after `after`. */
  firstFrom(version: string, after: number): Promise<Done> {
    const seen = this.done.find((d) => d.version === version && d.start >= after);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve) => this.versionWaiters.push({ version, after, resolve }));
  }

  /**
   * Resolves once every client has finished `rounds` requests sent at or after `since` (answered or
   * failed: a failure is counted, not hidden): the load has exercised every kind of connection past
   * that moment. Rejects after `deadlineMs`.
   */
  roundsSince(since: number, rounds: number, deadlineMs = 10_000): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.roundWaiters = this.roundWaiters.filter((w) => w !== waiter);
        reject(
          new Error(
            `timed out after ${deadlineMs} ms waiting for every load client to finish ${rounds} requests (${this.done.length} answered, ${this.failures.length} failed)`,
          ),
        );
      }, deadlineMs);
      const waiter: RoundWaiter = {
        since,
        rounds,
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
      };
      this.roundWaiters.push(waiter);
      this.checkRounds();
    });
  }

  /** Every client has finished `rounds` requests from now on (e.g. the load is running before a signal). */
  warmedUp(rounds = 2, deadlineMs = 10_000): Promise<void> {
    return this.roundsSince(this.startedAt, rounds, deadlineMs);
  }

  private checkRounds(): void {
    if (this.roundWaiters.length === 0) return;
    this.roundWaiters = this.roundWaiters.filter((w) => {
      const ready = this.finished.every((starts) => starts.filter((s) => s >= w.since).length >= w.rounds);
      if (ready) w.resolve();
      return !ready;
    });
  }

  private one(client: ClientKind, agent: http.Agent | false, start: number): Promise<void> {
    const timeoutMs = this.options.timeoutMs ?? 10_000;
    return new Promise<void>((resolve) => {
      let finished = false;
      const fail = (kind: string, detail: string): void => {
        if (finished) return;
        finished = true;
        this.failures.push({ start, end: now(), client, kind, detail });
        resolve();
      };
      const headers: http.OutgoingHttpHeaders = agent === false ? { connection: 'close' } : {};
      if (client === 'post') headers['content-type'] = 'application/octet-stream';
      const tls = this.options.tls;
      const request = tls === undefined ? http.request : https.request;
      const req = request(
        {
          ...(tls === undefined || agent !== false ? {} : { ca: tls.ca }),
          host: this.options.host ?? '127.0.0.1',
          port: this.options.port,
          path: this.options.path ?? '/',
          method: client === 'post' ? 'POST' : 'GET',
          agent,
          headers,
          timeout: timeoutMs,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('error', (err) => fail('reset', err.message));
          res.on('aborted', () => fail('reset', 'response aborted'));
          res.on('end', () => {
            if (finished) return;
            const status = res.statusCode ?? 0;
            if (status < 200 || status > 299) return fail('non2xx', `status ${status}`);
            finished = true;
            let body: { version?: unknown; pid?: unknown } = {};
            try {
              body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as typeof body;
            } catch {
              // not a versioned fixture
            }
            const d: Done = {
              start,
              end: now(),
              client,
              version: String(body.version ?? ''),
              pid: Number(body.pid ?? 0),
            };
            this.done.push(d);
            if (this.versionWaiters.length > 0) {
              this.versionWaiters = this.versionWaiters.filter((w) => {
                const match = w.version === d.version && d.start >= w.after;
                if (match) w.resolve(d);
                return !match;
              });
            }
            resolve();
          });
        },
      );
      req.on('timeout', () => {
        fail('timeout', `no response within ${timeoutMs} ms`);
        req.destroy();
      });
      req.on('error', (err: NodeJS.ErrnoException) => {
        const kind =
          err.code === 'ECONNREFUSED'
            ? 'refused'
            : err.code === 'ECONNRESET' || err.code === 'EPIPE' || err.message === 'socket hang up'
              ? 'reset'
              : (err.code ?? 'error');
        fail(kind, `${err.code ?? ''} ${err.message}`.trim());
      });
      if (client === 'post') req.end(BODY);
      else req.end();
    });
  }

  /** Stop sending (the requests in flight end by themselves). */
  halt(): void {
    this.running = false;
    liveLoads.delete(this);
  }

  async stop(): Promise<LoadResult> {
    this.halt();
    this.stoppedAt = now();
    await Promise.all(this.loops);
    for (const a of this.agents) a.destroy();
    const sorted = this.done.map((d) => d.end - d.start).sort((a, b) => a - b);
    const q = (p: number): number => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? 0;
    const byKind: Record<string, number> = {};
    for (const f of this.failures) byKind[f.kind] = (byKind[f.kind] ?? 0) + 1;
    return {
      ok: this.done.length,
      failed: this.failures.length,
      byKind,
      done: this.done,
      failures: this.failures,
      maxMs: sorted.at(-1) ?? 0,
      p50: q(0.5),
      p99: q(0.99),
    };
  }
}

/** One GET on a new connection, body parsed as JSON (rejects if it is not JSON); HTTPS with `ca`. */
export function getJson(
  port: number,
  path = '/',
  options: { host?: string; socketPath?: string; timeoutMs?: number; ca?: (string | Buffer)[] } = {},
): Promise<{ status: number; body: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const get = options.ca === undefined ? http.get : https.get;
    const req = get(
      {
        ...(options.socketPath === undefined
          ? { host: options.host ?? '127.0.0.1', port }
          : { socketPath: options.socketPath }),
        path,
        agent: false,
        timeout: options.timeoutMs ?? 10_000,
        ...(options.ca === undefined ? {} : { ca: options.ca }),
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
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
      },
    );
    req.on('timeout', () =>
      req.destroy(new Error(`GET ${path}: no answer within ${options.timeoutMs ?? 10_000} ms`)),
    );
    req.on('error', reject);
  });
}

/** The assertion every restart test makes: not one request failed, of any kind. */
export function assertNoFailedRequests(result: LoadResult): void {
  if (result.failed === 0) return;
  throw new Error(
    `${result.failed} failed requests: ${JSON.stringify(result.byKind)} ${result.failures
      .slice(0, 5)
      .map((f) => `${f.client} ${f.kind}: ${f.detail} after ${Math.round(f.end - f.start)} ms`)
      .join('; ')}`,
  );
}

/** Stop the load and report its figures (t.diagnostic). */
export async function stopAndReport(
  load: Load,
  t: { diagnostic(message: string): void },
): Promise<LoadResult> {
  const result = await load.stop();
  t.diagnostic(
    `requests ok=${result.ok} failed=${result.failed} p50=${result.p50}ms p99=${result.p99}ms max=${result.maxMs}ms`,
  );
  return result;
}

/**
 * Stop the load, report its figures (t.diagnostic) and assert that no request failed: the end of every
 * restart-under-load test.
 */
export async function stopWithoutFailures(
  load: Load,
  t: { diagnostic(message: string): void },
): Promise<LoadResult> {
  const result = await stopAndReport(load, t);
  assertNoFailedRequests(result);
  return result;
}
