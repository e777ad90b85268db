// Metrics as data: prom-client's JSON form (`registry.getMetricsAsJSON()`), which is what workers send the
// master and what prom-client's AggregatorRegistry.aggregate merges and writes in the exposition format.
// A worker runs app code, so a reply is checked here before anything in it is believed: names and label
// names the format allows (nothing can be injected into the exposition), numbers, bounded sizes.
// The types below describe that JSON form as prom-client 15.1 writes it, which is why package.json pins
// prom-client to 15.1.x (~15.1.3): a new minor may change the shape these casts assume.

import { isTotals } from './requests.js';

export type MetricType = 'counter' | 'gauge' | 'histogram' | 'summary';
export type Aggregator = 'sum' | 'max' | 'min' | 'average' | 'first' | 'omit';

export interface MetricValue {
  value: number;
  labels: Record<string, string | number>;
  /** For histograms and summaries: `<name>_bucket`, `<name>_sum`, `<name>_count`. */
  metricName?: string;
}

export interface MetricJson {
  name: string;
  help: string;
  type: MetricType;
  aggregator: Aggregator;
  values: MetricValue[];
}

/** What a worker answers to a scrape (JSON, sent in chunks: protocol.ts). */
export interface WorkerReply {
  metrics: MetricJson[];
  /** Request totals (requests.ts), fresher than the last heartbeat's. */
  totals?: number[];
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const TYPES: readonly string[] = ['counter', 'gauge', 'histogram', 'summary'];
const AGGREGATORS: readonly string[] = ['sum', 'max', 'min', 'average', 'first', 'omit'];
const MAX_METRICS = 1000;
const MAX_VALUES = 20_000;
const MAX_HELP = 1024;
const MAX_LABEL_VALUE = 1024;

/** A worker's reply, checked; or why it is not one. */
export function parseWorkerReply(text: string): WorkerReply | string {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return 'metrics reply is not JSON';
  }
  if (!isObject(value) || !Array.isArray(value.metrics)) return 'metrics reply has no metrics array';
  if (value.metrics.length > MAX_METRICS) return `metrics reply has more than ${MAX_METRICS} metrics`;
  let values = 0;
  for (const m of value.metrics) {
    const why = metricProblem(m);
    if (why !== undefined) return `metrics reply: ${why}`;
    values += (m as MetricJson).values.length;
    if (values > MAX_VALUES) return `metrics reply has more than ${MAX_VALUES} samples`;
  }
  if (value.totals !== undefined && !isTotals(value.totals)) return 'metrics reply: totals is not valid';
  return {
    metrics: value.metrics as MetricJson[],
    ...(value.totals === undefined ? {} : { totals: value.totals }),
  };
}

function metricProblem(m: unknown): string | undefined {
  if (!isObject(m)) return 'a metric is not an object';
  if (typeof m.name !== 'string' || !NAME.test(m.name)) return 'a metric name is not valid';
  if (typeof m.help !== 'string' || m.help.length > MAX_HELP) return `${m.name}: help is not valid`;
  if (typeof m.type !== 'string' || !TYPES.includes(m.type)) return `${m.name}: unknown type`;
  if (m.aggregator !== undefined && (typeof m.aggregator !== 'string' || !AGGREGATORS.includes(m.aggregator)))
    return `${m.name}: unknown aggregator`;
  if (!Array.isArray(m.values)) return `${m.name}: values is not an array`;
  for (const v of m.values) {
    // JSON has no NaN (a gauge not measured yet): it arrives as null, and is left out (withoutNaN).
    if (isObject(v) && v.value === null) v.value = Number.NaN;
    if (!isObject(v) || typeof v.value !== 'number') return `${m.name}: a value is not a number`;
    if (v.metricName !== undefined && (typeof v.metricName !== 'string' || !NAME.test(v.metricName)))
      return `${m.name}: a sample name is not valid`;
    if (!isObject(v.labels)) return `${m.name}: labels is not an object`;
    for (const [k, l] of Object.entries(v.labels)) {
      if (!LABEL.test(k) || k.startsWith('__'))
        return `${m.name}: label name ${JSON.stringify(k)} is not valid`;
      if (!(typeof l === 'string' && l.length <= MAX_LABEL_VALUE) && typeof l !== 'number')
        return `${m.name}: label ${k} is not a string or number`;
    }
  }
  return undefined;
}

/**
 * The same metrics with `labels` set on every sample (overriding what the source said: a worker cannot
 * pass itself off as another), and the aggregator defaulted to `sum` as prom-client does.
 */
export function withLabels(metrics: readonly MetricJson[], labels: Record<string, string>): MetricJson[] {
  return metrics.map((m) => ({
    ...m,
    aggregator: m.aggregator ?? 'sum',
    values: m.values.map((v) => ({ ...v, labels: { ...v.labels, ...labels } })),
  }));
}

/** The metric without its samples that are NaN (not measured): no sample, rather than `Nan`. */
export function withoutNaN(m: MetricJson): MetricJson {
  return m.values.some((v) => Number.isNaN(v.value))
    ? { ...m, values: m.values.filter((v) => !Number.isNaN(v.value)) }
    : m;
}

export function gauge(
  name: string,
  help: string,
  values: { labels?: Record<string, string | number>; value: number }[],
  aggregator: Aggregator = 'sum',
): MetricJson {
  return {
    name,
    help,
    type: 'gauge',
    aggregator,
    values: values.map((v) => ({ labels: v.labels ?? {}, value: v.value })),
  };
}

export function counter(
  name: string,
  help: string,
  values: { labels?: Record<string, string | number>; value: number }[],
): MetricJson {
  return { ...gauge(name, help, values), type: 'counter' };
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
