// A worker's answer to a scrape (imported lazily, on the master's first `metrics` request): its default
// process metrics, its gauges and its request totals, as JSON cut into chunks that each fit a datagram.
// The master adds the `worker` label itself: a worker's word on who it is is not believed.
import type { AppServer } from '../server/index.js';
import { processMetrics } from './expose.js';
import { gauge, type MetricJson, type WorkerReply } from './json.js';
import { REQUESTS } from './requests.js';

/** Gauges of the serving process (a worker, or the single-mode server). */
export function servingGauges(server: AppServer | undefined): MetricJson[] {
  const c = server?.connectionCounts() ?? { request: 0, idle: 0, longLived: 0 };
  return [
    gauge('nserve_http_requests_in_flight', 'Requests being served', [{ value: server?.inFlight ?? 0 }]),
    gauge('nserve_http_open_connections', 'Open connections by kind (request, idle keep-alive, long-lived)', [
      { labels: { kind: 'request' }, value: c.request },
      { labels: { kind: 'idle' }, value: c.idle },
      { labels: { kind: 'long-lived' }, value: c.longLived },
    ]),
  ];
}

export async function workerReply(server: AppServer | undefined): Promise<WorkerReply> {
  return {
    metrics: [...(await processMetrics()), ...servingGauges(server)],
    totals: REQUESTS.snapshot(),
  };
}

/** The reply as JSON in chunks of at most `chunk` characters (at most `maxParts`, else an empty reply). */
export function chunked(reply: WorkerReply, chunk: number, maxParts: number): string[] {
  let text = JSON.stringify(reply);
  if (text.length > chunk * maxParts) text = JSON.stringify({ metrics: [], totals: reply.totals });
  const parts: string[] = [];
  for (let i = 0; i < text.length; i += chunk) parts.push(text.slice(i, i + chunk));
  return parts.length === 0 ? [''] : parts;
}
