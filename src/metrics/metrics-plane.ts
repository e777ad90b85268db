// The metrics plane of one server process (single, or the master): the store that keeps counters from
// going backwards, the scrape (this process, plus each worker over its channel, with a deadline), and the
// dedicated read-only listener (--metrics-url).
//
// The listener lives for the PID like the app's sockets: a hot restart hands its descriptor to the next
// image (hand-off `metrics.listener`), so scrapes that arrive during the exec wait in its accept queue.
// Before the exec the plane stops accepting and finishes the scrapes in flight (`pause`); every answer
// says `Connection: close`, so no idle keep-alive connection is cut by the exec either.
import type * as http from 'node:http';
import * as net from 'node:net';
import type { Config } from '../config/index.js';
import { errorCode, errorMessage, usageError } from '../errors.js';
import { formatAddress } from '../listen/bind-uri.js';
import type { Listener } from '../listen/binder.js';
import { logEvent } from '../log/events.js';
import type { Logger } from '../log/logger.js';
import * as native from '../native/index.js';
import type { Handoff } from '../restart/handoff.js';
import type { RestartHistory } from '../restart/history.js';
import { VERSION } from '../version.js';
import { gauge, type MetricJson, withLabels } from './json.js';
import { QueueSampler } from './queue.js';
import { REQUESTS, totalsMetrics } from './requests.js';
import { MetricsStore } from './store.js';

/** How long a scrape waits for the workers' answers. */
export const SCRAPE_DEADLINE_MS = 1000;
/** How long a hot restart waits for scrapes in flight (and connections that sent nothing yet) before its exec. */
const PAUSE_LIMIT_MS = 1000;

/** What a serving process adds to a scrape (cluster.ts, single-source.ts). */
export interface MetricsSource {
  /** The `worker` label of this process's own metrics: `master` or `single`. */
  readonly self: string;
  listeners(): readonly Listener[];
  /** Metrics of this server (and its workers), already labelled. */
  collect(store: MetricsStore, deadlineMs: number): Promise<MetricJson[][]>;
  /** Request totals counted in this very process (single mode), not yet in the store. */
  ownTotals?(): ReadonlyMap<string, readonly number[]>;
}

export type HandedMetrics = NonNullable<Handoff['metrics']>;

export class MetricsPlane {
  readonly store: MetricsStore;
  private source: MetricsSource | undefined;
  private readonly sampler: QueueSampler;
  private rendering: Promise<{ text: string; contentType: string }> | undefined;
  private http: http.Server | undefined;
  private readonly open = new Set<net.Socket>();
  private inFlight = 0;

  private constructor(
    private readonly config: Config,
    private readonly log: Logger,
    private readonly history: RestartHistory,
    handed: HandedMetrics | undefined,
    /** The dedicated listener (owned for the life of the PID), if --metrics-url is set. */
    readonly fd: number | undefined,
  ) {
    this.store = MetricsStore.fromHandoff(handed?.totals);
    this.sampler = new QueueSampler(() =>
      (this.source?.listeners() ?? [])
        .filter((l) => l.address.family !== 'unix')
        .map((l) => ({ bind: l.spec.uri, slot: l.slot, fd: l.fd })),
    );
    history.onFinish = (r) => this.store.restartFinished(r);
  }

  /**
   * Bind (or adopt, after a hot restart) the dedicated listener now, so that a bad or busy address fails
   * before the app boots; serve it at once (scrapes during a single-mode app load get the server's own
   * metrics).
   */
  static open(
    config: Config,
    log: Logger,
    history: RestartHistory,
    handed: HandedMetrics | undefined,
  ): MetricsPlane {
    let fd: number | undefined;
    const want = config.metricsUrl;
    const inherited = handed?.listener;
    if (inherited !== undefined && want?.uri === inherited.uri) {
      fd = inherited.fd;
      native.setCloexec(fd, true);
    } else {
      if (inherited !== undefined) native.close(inherited.fd); // dropped from the config
      if (want !== undefined) {
        try {
          fd = native.listen({ family: want.family, host: want.host, port: want.port, backlog: 128 });
        } catch (err) {
          const why =
            errorCode(err) === 'EADDRINUSE'
              ? 'address already in use (another process listens there; choose another port)'
              : errorMessage(err);
          throw usageError('ERR_NSERVE_BIND', `invalid --metrics-url ${want.uri}: ${why}`, err);
        }
      }
    }
    const plane = new MetricsPlane(config, log, history, handed, fd);
    if (fd !== undefined) plane.serve();
    return plane;
  }

  /** The listener's address as bound (port 0 picks one), for logs and tests. */
  get url(): string | undefined {
    if (this.fd === undefined) return undefined;
    return formatAddress(native.localAddress(this.fd));
  }

  attach(source: MetricsSource): void {
    this.source = source;
  }

  /** One scrape; concurrent scrapes share it (a scrape loop cannot multiply the work on the workers). */
  render(): Promise<{ text: string; contentType: string }> {
    this.rendering ??= this.scrape().finally(() => {
      this.rendering = undefined;
    });
    return this.rendering;
  }

  private async scrape(): Promise<{ text: string; contentType: string }> {
    const expose = await import('./expose.js');
    const self = this.source?.self ?? (this.config.workers > 0 ? 'master' : 'single');
    const sources: MetricJson[][] = [
      withLabels(await expose.processMetrics(), { worker: self }),
      this.store.metrics(),
      this.serverMetrics(),
    ];
    if (this.source !== undefined)
      sources.push(...(await this.source.collect(this.store, SCRAPE_DEADLINE_MS)));
    sources.push(totalsMetrics(this.store.requestTotals(this.source?.ownTotals?.())));
    return expose.render(sources);
  }

  /** The server's own gauges: version, restarts from the history, listening sockets. */
  private serverMetrics(): MetricJson[] {
    const records = this.history.records;
    const last = [...records].reverse().find((r) => r.finished !== null);
    const seconds = (a: string, b: string | null): number =>
      b === null ? 0 : Math.max(0, (Date.parse(b) - Date.parse(a)) / 1000);
    const queues = this.sampler.scrape();
    // The kernel's limit of each bind's slots (they share one --backlog).
    const limits = new Map<string, number>();
    for (const q of queues) limits.set(q.socket.bind, Math.max(limits.get(q.socket.bind) ?? 0, q.limit));
    return [
      gauge('nserve_info', 'The nserve version and mode (always 1)', [
        { labels: { version: VERSION, mode: this.config.workers > 0 ? 'cluster' : 'single' }, value: 1 },
      ]),
      gauge('nserve_restart_in_progress', '1 while a restart runs', [
        { value: records.at(-1)?.outcome === 'in-progress' ? 1 : 0 },
      ]),
      gauge(
        'nserve_last_restart_duration_seconds',
        'Duration of the last finished restart, by kind and result',
        last === undefined
          ? []
          : [
              {
                labels: { kind: last.kind, result: last.outcome === 'ok' ? 'ok' : 'failed' },
                value: seconds(last.started, last.finished),
              },
            ],
      ),
      gauge(
        'nserve_last_restart_pause_seconds',
        'Hand-over pause of the last hot restart: no code accepted new connections (they waited in the queues)',
        last?.pauseMs === undefined ? [] : [{ labels: { kind: last.kind }, value: last.pauseMs / 1000 }],
      ),
      gauge(
        'nserve_listen_queue_depth',
        'Connections waiting in the accept queue of a listening socket, by bind and slot',
        queues.map((q) => ({ labels: { bind: q.socket.bind, slot: String(q.socket.slot) }, value: q.depth })),
      ),
      gauge(
        'nserve_listen_queue_depth_max',
        'Deepest accept queue since the previous scrape (sampled every 100 ms), by bind and slot',
        queues.map((q) => ({ labels: { bind: q.socket.bind, slot: String(q.socket.slot) }, value: q.max })),
      ),
      gauge(
        'nserve_listen_backlog',
        'Accept-queue limit of each bind (--backlog capped by net.core.somaxconn)',
        [...limits].map(([bind, value]) => ({ labels: { bind }, value })),
      ),
    ];
  }

  // ── the dedicated listener ─────────────────────────────────────────────────────────────────────────

  private serve(): void {
    if (this.fd === undefined || this.http !== undefined) return;
    // getBuiltinModule, not an ES import of node:http: see server/create.ts.
    const server = process
      .getBuiltinModule('node:http')
      .createServer((req, res) => void this.answer(req, res));
    server.on('connection', (sock: net.Socket) => {
      this.open.add(sock);
      sock.on('close', () => this.open.delete(sock));
    });
    server.on('clientError', (_err, sock: net.Socket) => sock.destroy());
    server.on('error', (err) =>
      logEvent(this.log, 'metrics.listener.failed', { err }, `metrics listener: ${errorMessage(err)}`),
    );
    // A dup: closing the http.Server (pause) must never close the socket, whose queue the exec keeps.
    server.listen({ fd: native.dup(this.fd) }, 128); // (Node ignores an fd's `backlog` option)
    this.http = server;
  }

  private async answer(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    res.shouldKeepAlive = false;
    const path = (req.url ?? '/').split('?')[0];
    if (path !== '/metrics') {
      res
        .writeHead(404, { 'content-type': 'text/plain' })
        .end('not found: this listener serves GET /metrics\n');
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET', 'content-type': 'text/plain' }).end('GET /metrics only\n');
      return;
    }
    this.inFlight++;
    try {
      const { text, contentType } = await this.render();
      res.writeHead(200, { 'content-type': contentType, 'cache-control': 'no-store' });
      res.end(req.method === 'HEAD' ? undefined : text);
    } catch (err) {
      logEvent(this.log, 'metrics.scrape.failed', { err }, `metrics: scrape failed: ${errorMessage(err)}`);
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
      res.end('scrape failed\n');
    } finally {
      this.inFlight--;
    }
  }

  /**
   * Before a hot restart's exec: stop accepting (connections then wait in the queue for the next image),
   * finish the scrapes in flight, close what is left. Returns the descriptors that must cross the exec.
   */
  async pause(): Promise<number[]> {
    if (this.fd === undefined) return [];
    const server = this.http;
    this.http = undefined;
    if (server !== undefined) net.Server.prototype.close.call(server);
    // Every connection carries one scrape (answers say Connection: close) and a scraper sends its request
    // at once: wait until each accepted one is answered and closed. A client that sends nothing is cut at
    // the limit (it holds up the exec at most that long).
    const deadline = Date.now() + PAUSE_LIMIT_MS;
    while ((this.inFlight > 0 || this.open.size > 0) && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 5));
    for (const sock of this.open) sock.destroy();
    return [this.fd];
  }

  /** Descriptors the leak check found at a hot restart, under `policy`. */
  leaksFound(policy: string, n: number): void {
    this.store.leaksFound(policy, n);
  }

  /** The exec did not happen: serve again. */
  resume(): void {
    this.serve();
  }

  /** What the next image is handed (single mode: with this process's request totals, which the exec resets). */
  handoff(): HandedMetrics {
    const own =
      this.config.workers === 0 && REQUESTS.on
        ? { worker: 'single', totals: REQUESTS.snapshot() }
        : undefined;
    return {
      ...(this.fd === undefined || this.config.metricsUrl === undefined
        ? {}
        : { listener: { fd: this.fd, uri: this.config.metricsUrl.uri } }),
      totals: this.store.toHandoff(own),
    };
  }
}
