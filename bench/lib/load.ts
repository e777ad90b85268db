// A counting load generator for the restart suite (ideas from test/helpers/load.ts): every request is
// accounted for, with its start and end time, and how it failed. wrk and autocannon only report totals and
// reconnect silently; across a restart we need to know which request failed, how, when, and which code
// (version, pid) answered the ones that succeeded.
import * as http from 'node:http';
import { now } from './proc.js';

/** Puma's restart test posts 16,256-byte bodies; so do we. */
export const POST_BYTES = 16256;
const BODY = Buffer.alloc(POST_BYTES, 'x');

export type ClientKind = 'keepalive' | 'newconn' | 'post';

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
  keepAlive: number;
  newConnection: number;
  post: number;
  timeoutMs: number;
}

export class Load {
  private running = true;
  private readonly loops: Promise<void>[] = [];
  private readonly agents: http.Agent[] = [];
  readonly done: Done[] = [];
  readonly failures: Failure[] = [];
  readonly startedAt = now();
  stoppedAt = 0;
  private readonly versionWaiters: { version: string; after: number; resolve: (d: Done) => void }[] = [];

  constructor(private readonly options: LoadOptions) {
    for (let i = 0; i < options.keepAlive; i++) {
      const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
      this.agents.push(agent);
      this.loops.push(this.loop('keepalive', agent));
    }
    for (let i = 0; i < options.newConnection; i++) this.loops.push(this.loop('newconn', false));
    for (let i = 0; i < options.post; i++) this.loops.push(this.loop('post', false));
  }

  private async loop(client: ClientKind, agent: http.Agent | false): Promise<void> {
    while (this.running) await this.one(client, agent);
  }

  /** Resolves with the first response from `version` that started after `after`. */
  firstFrom(version: string, after: number): Promise<Done> {
    const seen = this.done.find((d) => d.version === version && d.start >= after);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve) => this.versionWaiters.push({ version, after, resolve }));
  }

  private one(client: ClientKind, agent: http.Agent | false): Promise<void> {
    const start = now();
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
      const req = http.request(
        {
          host: '127.0.0.1',
          port: this.options.port,
          path: '/',
          method: client === 'post' ? 'POST' : 'GET',
          agent,
          headers,
          timeout: this.options.timeoutMs,
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
              // not JSON
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
              for (const w of this.versionWaiters.splice(0)) {
                if (w.version === d.version && d.start >= w.after) w.resolve(d);
                else this.versionWaiters.push(w);
              }
            }
            resolve();
          });
        },
      );
      req.on('timeout', () => {
        fail('timeout', `no response within ${this.options.timeoutMs} ms`);
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

  async stop(): Promise<void> {
    this.running = false;
    this.stoppedAt = now();
    await Promise.all(this.loops);
    for (const a of this.agents) a.destroy();
  }
}
