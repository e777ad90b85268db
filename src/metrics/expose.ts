// The only module that loads prom-client, and it is imported lazily (on the first scrape, or a worker's
// first metrics request): a server nobody scrapes never pays its memory. prom-client collects the
// process's default metrics (CPU, RSS, descriptors, heap, event-loop lag), merges metrics from several
// processes (AggregatorRegistry.aggregate, by each metric's aggregator) and writes the text format.
import { AggregatorRegistry, collectDefaultMetrics, Registry } from 'prom-client';
import type { MetricJson } from './json.js';

let own: Registry | undefined;

/** This process's default metrics (prom-client's `collectDefaultMetrics`), as data. */
export async function processMetrics(): Promise<MetricJson[]> {
  if (own === undefined) {
    own = new Registry();
    collectDefaultMetrics({ register: own, eventLoopMonitoringPrecision: 20 });
  }
  return (await own.getMetricsAsJSON()) as unknown as MetricJson[];
}

/** Merge the sources (same name and labels: combined by the metric's aggregator) into the text format. */
export async function render(
  sources: readonly MetricJson[][],
): Promise<{ text: string; contentType: string }> {
  const registry = AggregatorRegistry.aggregate(sources as unknown as object[]);
  return { text: await registry.metrics(), contentType: registry.contentType };
}
