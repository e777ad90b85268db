// Long-lived clients for restart tests: WebSocket clients (the `ws` library) that ping and reconnect at
// once when closed, as client libraries do, and event-stream (SSE) clients that reconnect likewise.
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import WebSocket from 'ws';
import { switchRelease } from './releases.js';
import { ROOT } from './server.js';

export interface Reply {
  version: string;
  /** Server clock (Date.now()) when the app answered. */
  at: number;
}

/** A release whose app (listen-compat) serves `/` (JSON), `/events` (SSE) and WebSocket echo. */
export function writeLongLivedRelease(
  root: string,
  version: string,
  options: { bootMs: number; drainApi?: boolean },
): void {
  const dir = path.join(root, 'releases', version);
  fs.mkdirSync(dir, { recursive: true });
  const nserve = JSON.stringify(path.join(ROOT, 'dist/src/index.js'));
  fs.writeFileSync(
    path.join(dir, 'app.mjs'),
    `// fixture release ${version}: an unmodified app with a ws server and an event stream
import * as http from 'node:http';
import { createRequire } from 'node:module';
import { setTimeout as sleep } from 'node:timers/promises';
const require = createRequire(${JSON.stringify(path.join(ROOT, 'package.json'))});
const { WebSocketServer } = require('ws');
const VERSION = ${JSON.stringify(version)};
await sleep(${options.bootMs});
const reply = () => JSON.stringify({ version: VERSION, pid: process.pid, at: Date.now() });
const server = http.createServer((req, res) => {
  if (req.url === '/events') {
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store' });
    res.write('data: ' + reply() + '\\n\\n');
    const timer = setInterval(() => res.write('data: ' + reply() + '\\n\\n'), 100);
    res.on('close', () => clearInterval(timer));
    return;
  }
  res.setHeader('content-type', 'application/json');
  res.end(reply());
});
const wss = new WebSocketServer({ server });
wss.on('connection', (ws) => ws.on('message', () => ws.send(reply())));
${
  options.drainApi === true
    ? `const { onDrain } = await import(${nserve});
onDrain(() => { for (const c of wss.clients) c.close(1012, 'service restart'); });`
    : ''
}
server.listen(process.env.PORT);
`,
  );
}

export function makeLongLivedReleases(
  root: string,
  versions: string[],
  options: { bootMs: number; drainApi?: boolean },
): void {
  for (const v of versions) writeLongLivedRelease(root, v, options);
  switchRelease(root, versions[0]!);
}

export class WsClient {
  readonly replies: Reply[] = [];
  readonly closes: number[] = [];
  /** Errors on an open connection (a reset, a protocol error): never expected. */
  readonly errors: string[] = [];
  /** Failed connection attempts (e.g. refused once the server has stopped). */
  readonly connectErrors: string[] = [];
  private ws: WebSocket | undefined;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(private readonly port: number) {
    this.connect();
  }

  private connect(): void {
    if (this.stopped) return;
    const ws = new WebSocket(`ws://127.0.0.1:${this.port}/`);
    this.ws = ws;
    let opened = false;
    ws.on('open', () => {
      opened = true;
      this.timer = setInterval(() => ws.send('ping'), 50);
    });
    ws.on('message', (data) => this.replies.push(JSON.parse(String(data)) as Reply));
    ws.on('error', (err) => (opened ? this.errors : this.connectErrors).push(err.message));
    ws.on('close', (code) => {
      clearInterval(this.timer);
      if (this.stopped) return;
      if (opened) this.closes.push(code);
      // At once, as client libraries do (a little later after a failed attempt).
      setTimeout(() => this.connect(), opened ? 0 : 50);
    });
  }

  get last(): Reply | undefined {
    return this.replies.at(-1);
  }

  stop(): void {
    this.stopped = true;
    clearInterval(this.timer);
    this.ws?.terminate();
  }
}

export class SseClient {
  readonly events: Reply[] = [];
  readonly ends: number[] = [];
  readonly errors: string[] = [];
  private req: http.ClientRequest | undefined;
  private stopped = false;

  constructor(private readonly port: number) {
    this.connect();
  }

  private connect(): void {
    if (this.stopped) return;
    const req = http.get({ host: '127.0.0.1', port: this.port, path: '/events', agent: false }, (res) => {
      let buf = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        buf += chunk;
        for (let i = buf.indexOf('\n\n'); i >= 0; i = buf.indexOf('\n\n')) {
          const event = buf.slice(0, i);
          buf = buf.slice(i + 2);
          if (event.startsWith('data: ')) this.events.push(JSON.parse(event.slice(6)) as Reply);
        }
      });
      res.on('error', (err) => this.errors.push(err.message));
      res.on('end', () => {
        this.ends.push(Date.now());
        this.connect();
      });
    });
    req.on('error', (err) => {
      if (this.stopped) return;
      this.errors.push(err.message);
      setTimeout(() => this.connect(), 50);
    });
    this.req = req;
  }

  get last(): Reply | undefined {
    return this.events.at(-1);
  }

  stop(): void {
    this.stopped = true;
    this.req?.destroy();
  }
}
