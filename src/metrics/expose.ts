// The only module that loads prom-client, and it is imported lazily (on the first scrape, or a worker's
// first metrics request): a server nobody scrapes never pays its memory. prom-client collects the
// process's default metrics (CPU, RSS, descriptors, heap, event-loop lag), merges metrics from several
// processes (AggregatorRegistry.aggregate, by each metric's aggregator) and writes the text format.
import { AggregatorRegistry, collectDefaultMetrics, Registry } from 'prom-client';
import { type MetricJson, withoutNaN } from './json.js';

let own: Registry | undefined;

/** This process's default metrics (prom-client's `collectDefaultMetrics`), as data. */
export async function processMetrics(): Promise<MetricJson[]> {
  if (own === undefined) {
    own = new Registry();
    collectDefaultMetrics({ register: own, eventLoopMonitoringPrecision: 20 });
  }
  return withoutUnsampledLag((await own.getMetricsAsJSON()) as unknown as MetricJson[]);
}

/**
 * prom-client reads its event-loop delay histogram at each scrape and resets it. A histogram with no
 * sample (the first scrape after the process started, which is also the first after each hot restart's
 * exec, or two scrapes closer together than the 20 ms resolution) gives NaN for the mean and standard
 * deviation, and nonsense for the rest (a minimum of 9.2e9 s, percentiles of 0). Those gauges then have no
 * sample rather than 0: an absent sample is "not measured" to Prometheus (rate-free gauges simply have a
 * gap, and avg_over_time or an alert skip it), while 0 would be a measurement claiming a loop without
 * delay, pulling averages down.
 */
const LAG_FROM_HISTOGRAM = new Set(
  ['min', 'max', 'mean', 'stddev', 'p50', 'p90', 'p99'].map((s) => `nodejs_eventloop_lag_${s}_seconds`),
);

function withoutUnsampledLag(metrics: MetricJson[]): MetricJson[] {
  const mean = metrics.find((m) => m.name === 'nodejs_eventloop_lag_mean_seconds');
  if (mean === undefined || !mean.values.some((v) => Number.isNaN(v.value))) return metrics;
  return metrics.map((m) => (LAG_FROM_HISTOGRAM.has(m.name) ? { ...m, values: [] } : m));
}

/** Merge the sources (same name and labels: combined by the metric's aggregator) into the text format. */
export async function render(
  sources: readonly MetricJson[][],
): Promise<{ text: string; contentType: string }> {
  // No sample is ever NaN (prom-client would write `Nan`): a value that is not a number is not known.
  const known = sources.map((metrics) => metrics.map(withoutNaN));
  const registry = AggregatorRegistry.aggregate(known as unknown as object[]);
  return { text: await registry.metrics(), contentType: registry.contentType };
}
