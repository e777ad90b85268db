// HTTP/2 through restarts: an h2 load (several sessions, several concurrent streams each) on an
// `ssl://…&alpn=h2,http/1.1` bind while the server restarts into a new release. Every stream is accounted
// for. A stream refused by a GOAWAY whose lastStreamID is below its id was never processed (RFC 9113,
// 6.8): real clients retry it on a new session, and so does this one, counting it as "retried". Any other
// reset, session error or timeout is a failed stream.
import assert from 'node:assert/strict';
import * as http2 from 'node:http2';
import { after, type TestContext, test } from 'node:test';
import { now } from '../helpers/logged-process.js';
import { makeReleases } from '../helpers/releases.js';
import { type RestartKind, restart } from '../helpers/restart.js';
import {
  isEvent,
  killAll,
  processAlive,
  type ServerProcess,
  serveCurrent,
  tmpDir,
  until,
} from '../helpers/server.js';
import { getJsonTls, makeCert, sslBind } from '../helpers/tls.js';

after(killAll);

const { NGHTTP2_REFUSED_STREAM, NGHTTP2_CANCEL } = http2.constants;

/** A stream answered 200. Times are now() (monotonic ms). */
interface H2Done {
  start: number;
  end: number;
  version: string;
  pid: number;
  path: string;
}

interface H2Failure {
  start: number;
  end: number;
  /** rst:<code>, goaway:<code>, session:<error>, timeout, non2xx:<status>, not-sent:<error>. */
  kind: string;
  detail: string;
}

/** One client session and what it heard from the server. */
interface Client {
  session: http2.ClientHttp2Session;
  /** The lastStreamID of the GOAWAY it received, if any. */
  goawayLast: number | undefined;
  goawayCode: number | undefined;
  error: string | undefined;
}

interface H2LoadOptions {
  port: number;
  ca: Buffer[];
  /** Client sessions (connections). */
  sessions: number;
  /** Streams kept in flight on each session. */
  streams: number;
  /** A stream with no answer by then is a `timeout` failure. */
  timeoutMs?: number;
  /**
   * Each session also holds an event stream (`GET /events`, long-lived) open, as a browser's
   * EventSource shares the connection of its page's requests. A drain may end it, cleanly (END_STREAM).
   */
  events?: boolean;
}

/**
 * Refused unprocessed, safe to retry as a real client does: after a GOAWAY whose lastStreamID is below
 * the stream's id, closed with REFUSED_STREAM (RFC 9113, 6.8), or never sent (no id yet).
 */
function refusedUnprocessed(c: Client, req: http2.ClientHttp2Stream): boolean {
  if (c.goawayLast === undefined) return false;
  const id = req.id;
  return id === undefined || (id > c.goawayLast && req.rstCode === NGHTTP2_REFUSED_STREAM);
}

/**
 * An h2 load generator: `sessions` slots, each with `streams` loops sending GET / one after another on
 * the slot's current session. A session that received GOAWAY (or failed) is replaced by a new one for
 * the next stream.
 */
class H2Load {
  private running = true;
  readonly done: H2Done[] = [];
  readonly failures: H2Failure[] = [];
  /** Streams refused by GOAWAY with lastStreamID below their id, sent again on a new session. */
  retried = 0;
  /** The paths of the retried streams (each stream has its own path, `/?n=<seq>`). */
  readonly retriedPaths: string[] = [];
  private seq = 0;
  goaways = 0;
  sessionsOpened = 0;
  /** Event streams ended by the server with END_STREAM (a clean close: the client opens a new one). */
  eventsEnded = 0;
  private readonly eventStreams = new Set<http2.ClientHttp2Stream>();
  private readonly slots: (Client | undefined)[];
  private readonly loops: Promise<void>[] = [];
  private readonly clients: Client[] = [];

  constructor(private readonly o: H2LoadOptions) {
    this.slots = new Array<Client | undefined>(o.sessions).fill(undefined);
    for (let s = 0; s < o.sessions; s++) for (let i = 0; i < o.streams; i++) this.loops.push(this.loop(s));
  }

  private client(slot: number): Client {
    const c = this.slots[slot];
    if (c !== undefined && c.goawayLast === undefined && c.error === undefined && !c.session.closed) return c;
    const session = http2.connect(`https://127.0.0.1:${this.o.port}`, { ca: this.o.ca });
    const fresh: Client = { session, goawayLast: undefined, goawayCode: undefined, error: undefined };
    this.sessionsOpened++;
    session.on('goaway', (code: number, lastStreamID: number) => {
      this.goaways++;
      fresh.goawayLast = lastStreamID;
      fresh.goawayCode = code;
    });
    session.on('error', (err: NodeJS.ErrnoException) => {
      fresh.error = `${err.code ?? ''} ${err.message}`.trim();
    });
    // A session that ends (after GOAWAY, or the server closed it) is not reused.
    session.on('close', () => {
      fresh.error ??= 'session closed';
    });
    this.slots[slot] = fresh;
    this.clients.push(fresh);
    if (this.o.events === true) this.openEvents(fresh);
    return fresh;
  }

  /** The session's event stream: ended cleanly by a drain, or a failure. */
  private openEvents(c: Client): void {
    const start = now();
    const req = c.session.request({ ':path': '/events' });
    this.eventStreams.add(req);
    let ended = false;
    req.on('data', () => {});
    req.on('end', () => {
      ended = true;
    });
    req.on('error', () => {});
    req.on('close', () => {
      this.eventStreams.delete(req);
      if (!this.running) return;
      const id = req.id;
      const rst = req.rstCode;
      if (ended && rst === http2.constants.NGHTTP2_NO_ERROR) this.eventsEnded++;
      else if (refusedUnprocessed(c, req)) this.retried++;
      else {
        this.failures.push({
          start,
          end: now(),
          kind: `events:rst ${rst}`,
          detail: `event stream ${id} ended=${ended} rst ${rst} goaway ${c.goawayCode}/${c.goawayLast} session ${c.error}`,
        });
      }
    });
    req.end();
  }

  private async loop(slot: number): Promise<void> {
    while (this.running) await this.one(slot);
  }

  /** One stream, to its outcome: answered, failed, or refused unprocessed and retried. */
  private one(slot: number): Promise<void> {
    const timeoutMs = this.o.timeoutMs ?? 10_000;
    const c = this.client(slot);
    const start = now();
    const path = `/?n=${this.seq++}`;
    return new Promise<void>((resolve) => {
      let settled = false;
      const fail = (kind: string, detail: string): void => {
        if (settled) return;
        settled = true;
        this.failures.push({ start, end: now(), kind, detail });
        resolve();
      };
      let req: http2.ClientHttp2Stream;
      try {
        req = c.session.request({ ':path': path });
      } catch (err) {
        // The session closed between the check and the request: nothing was sent.
        const code = (err as NodeJS.ErrnoException).code ?? '';
        if (code === 'ERR_HTTP2_GOAWAY_SESSION' || code === 'ERR_HTTP2_INVALID_SESSION') {
          c.error ??= code;
          settled = true;
          resolve();
          return;
        }
        fail(`not-sent:${code}`, String(err));
        return;
      }
      let status = 0;
      let streamError: string | undefined;
      const chunks: Buffer[] = [];
      req.on('response', (headers) => {
        status = Number(headers[':status']);
      });
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => {
        // Ended without a response: reset (its 'close' says how).
        if (settled || status === 0) return;
        if (status !== 200) return fail(`non2xx:${status}`, Buffer.concat(chunks).toString('utf8'));
        let body: { version?: unknown; pid?: unknown } = {};
        try {
          body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as typeof body;
        } catch {
          return fail('body', Buffer.concat(chunks).toString('utf8').slice(0, 100));
        }
        settled = true;
        this.done.push({ start, end: now(), version: String(body.version), pid: Number(body.pid), path });
        resolve();
      });
      req.on('error', (err: NodeJS.ErrnoException) => {
        streamError = `${err.code ?? ''} ${err.message}`.trim();
      });
      req.setTimeout(timeoutMs, () => {
        fail('timeout', `no answer within ${timeoutMs} ms (stream ${req.id})`);
        req.close(NGHTTP2_CANCEL);
      });
      req.on('close', () => {
        if (settled) return;
        const id = req.id;
        const rst = req.rstCode;
        if (refusedUnprocessed(c, req)) {
          settled = true;
          this.retried++;
          this.retriedPaths.push(path);
          resolve();
          return;
        }
        const what = `stream ${id} rst ${rst} goaway ${c.goawayCode}/${c.goawayLast} session ${c.error} error ${streamError} status ${status}`;
        if (c.goawayLast !== undefined) fail(`goaway:rst ${rst}`, what);
        else if (c.error !== undefined) fail(`session:${c.error}`, what);
        else fail(`rst:${rst}`, what);
      });
      req.end();
    });
  }

  /** Resolves once `count` streams sent at or after `since` have been answered by `version`. */
  answeredSince(version: string, since: number, count: number, deadlineMs = 15_000): Promise<true> {
    return until(
      `${count} h2 answers from ${version} to streams sent after ${Math.round(since)} ms`,
      () => this.done.filter((d) => d.version === version && d.start >= since).length >= count,
      deadlineMs,
    );
  }

  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.loops);
    for (const req of this.eventStreams) req.close(NGHTTP2_CANCEL);
    for (const c of this.clients) c.session.close();
  }

  summary(): string {
    const byKind: Record<string, number> = {};
    for (const f of this.failures) byKind[f.kind] = (byKind[f.kind] ?? 0) + 1;
    const byVersion: Record<string, number> = {};
    for (const d of this.done) byVersion[d.version] = (byVersion[d.version] ?? 0) + 1;
    return `h2 streams ok=${this.done.length} ${JSON.stringify(byVersion)} failed=${this.failures.length} ${JSON.stringify(byKind)} retried=${this.retried}${this.o.events === true ? ` events-ended-cleanly=${this.eventsEnded}` : ''} goaways=${this.goaways} sessions=${this.sessionsOpened}`;
  }
}

interface Scenario {
  name: string;
  workers: number | undefined;
  kind: RestartKind;
  /** Old and new code never serve side by side (hot restarts). */
  noOverlap: boolean;
  /** Every session also holds an event stream open (H2LoadOptions.events). */
  events?: boolean;
}

const RESTARTS: Scenario[] = [
  { name: 'cluster -w 2 hot restart (SIGUSR2)', workers: 2, kind: 'hot', noOverlap: true },
  { name: 'cluster -w 2 phased restart (SIGUSR1)', workers: 2, kind: 'phased', noOverlap: false },
  { name: 'single-mode hot restart (SIGUSR2)', workers: undefined, kind: 'hot', noOverlap: true },
];
// The same, with an event stream beside the requests of every session.
const SCENARIOS: Scenario[] = [
  ...RESTARTS,
  ...RESTARTS.map((s) => ({ ...s, name: `${s.name}, an event stream on every session`, events: true })),
];

async function h2Restart(t: TestContext, s: Scenario): Promise<void> {
  const dir = tmpDir(t);
  const cert = makeCert(dir, 'h2');
  const ca = [cert.pem];
  const release = { eventStream: s.events === true };
  const root = makeReleases(t, { v1: release, v2: release }, 'v1');
  const { srv, port } = await serveCurrent(t, root, {
    ...(s.workers === undefined ? {} : { workers: s.workers }),
    bind: sslBind(cert, '&alpn=h2,http/1.1'),
    // The grace of event streams at a phased restart's (and a stop's) drain, shortened for the test.
    args: ['--access-log', '--long-lived-grace', '0.5'],
  });
  const pid = srv.pid;
  const load = new H2Load({ port, ca, sessions: 4, streams: 4, events: s.events === true });
  let doneAt = 0;
  let restartLine = '';
  try {
    await load.answeredSince('v1', now(), 50);
    const { line } = await restart(srv, s.kind, { release: { root, version: 'v2' }, deadlineMs: 30_000 });
    doneAt = now();
    restartLine = String(line.msg);
    assert.equal(line.pid, pid, 'the restart was done by the same PID');
    await load.answeredSince('v2', doneAt, 300);
  } finally {
    await load.stop();
    t.diagnostic(`${s.name}: ${load.summary()}; ${restartLine}`);
  }
  assert.equal(
    load.failures.length,
    0,
    `failed h2 streams: ${JSON.stringify(load.failures.slice(0, 5).map((f) => ({ ...f, ms: Math.round(f.end - f.start) })))}`,
  );
  // The old code's event streams were ended, cleanly (a failed one is in load.failures).
  if (s.events === true) assert.ok(load.eventsEnded >= 4, `event streams ended cleanly: ${load.eventsEnded}`);
  // The access log has a line for every stream the app processed: none of the retried ones (a GOAWAY
  // that refuses a stream says it was not processed), and every answered one (once the log caught up).
  const served = (): Set<string> =>
    new Set(srv.lines.filter((l) => isEvent(l, 'http.request.done')).map((l) => String(l.path)));
  await until('the access log to name every answered stream', () => {
    const seen = served();
    return load.done.every((d) => seen.has(d.path));
  });
  const processedRefused = load.retriedPaths.filter((p) => served().has(p));
  assert.deepEqual(processedRefused, [], 'streams refused as unprocessed were not processed');
  // Streams sent after the restart was reported done answer v2 only.
  const lateV1 = load.done.filter((d) => d.start > doneAt && d.version !== 'v2');
  assert.equal(lateV1.length, 0, `answers other than v2 after done: ${JSON.stringify(lateV1.slice(0, 3))}`);
  if (s.noOverlap) {
    // No stream sent after new code had answered is answered by old code.
    const firstV2 = [...load.done].filter((d) => d.version === 'v2').sort((a, b) => a.end - b.end)[0];
    assert.ok(firstV2 !== undefined, 'v2 answered under load');
    const overlap = load.done.filter((d) => d.version === 'v1' && d.start > firstV2.end);
    assert.equal(overlap.length, 0, `v1 answered after v2 had: ${JSON.stringify(overlap.slice(0, 3))}`);
  }
  if (s.workers === undefined) {
    assert.ok(
      load.done.every((d) => d.pid === pid),
      'single mode: every stream answered by the server process',
    );
  }
  assert.ok(processAlive(pid), 'the server PID is still alive');
  // HTTP/1.1 on the same ssl:// bind still works, on the new code.
  const h1 = await getJsonTls(port, ca);
  assert.equal(h1.status, 200);
  assert.equal(h1.body.version, 'v2');
  await stopServer(srv);
}

async function stopServer(srv: ServerProcess): Promise<void> {
  srv.signal('SIGTERM');
  assert.deepEqual(await srv.waitExit(15_000), { code: 0, signal: null });
}

for (const s of SCENARIOS) {
  test(`HTTP/2 load through a ${s.name}: no failed stream, v2 only once done, same PID`, {
    timeout: 40_000,
  }, async (t) => {
    t.after(killAll);
    await h2Restart(t, s);
  });
}
