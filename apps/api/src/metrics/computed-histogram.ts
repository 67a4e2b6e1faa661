import type { Metric, MetricValueWithName, Registry } from 'prom-client';
import type { BucketRow } from '@farm/db';

export type { BucketRow };

/** Bucket upper bounds, in seconds, for the farm's histograms. */
export const DURATION_BUCKETS = [1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200];
export const WAIT_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900, 3600];
export const LATENCY_BUCKETS = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

/**
 * Per-bucket counts -> Prometheus histogram series: cumulative `_bucket{le}` (with +Inf),
 * `_sum` and `_count` for every label set (`labelNames`, in this order, tell the sets apart).
 */
export function histogramSeries(
  name: string,
  bounds: readonly number[],
  rows: readonly BucketRow[],
  labelNames: readonly string[],
) {
  const sets = new Map<string, { labels: Record<string, string>; counts: number[]; sum: number }>();
  const setOf = (labels: Record<string, string>) => {
    const key = JSON.stringify(labelNames.map((label) => labels[label]));
    let set = sets.get(key);
    if (!set) {
      set = { labels, counts: new Array<number>(bounds.length + 1).fill(0), sum: 0 };
      sets.set(key, set);
    }
    return set;
  };
  // Without labels there is exactly one series, reported (as zeros) before anything happened.
  if (labelNames.length === 0) setOf({});
  for (const row of rows) {
    const set = setOf(row.labels);
    set.counts[Math.min(Math.max(row.bucket, 0), bounds.length)] += row.count;
    set.sum += row.sum;
  }
  const values: MetricValueWithName<string>[] = [];
  for (const { labels, counts, sum } of sets.values()) {
    let cumulative = 0;
    bounds.forEach((le, i) => {
      cumulative += counts[i];
      values.push({ metricName: `${name}_bucket`, labels: { ...labels, le }, value: cumulative });
    });
    const count = cumulative + counts[bounds.length];
    values.push({ metricName: `${name}_bucket`, labels: { ...labels, le: '+Inf' }, value: count });
    values.push({ metricName: `${name}_sum`, labels, value: sum });
    values.push({ metricName: `${name}_count`, labels, value: count });
  }
  return values;
}

export interface ComputedHistogramOptions {
  name: string;
  help: string;
  labelNames: readonly string[];
  bounds: readonly number[];
  /** Reads the per-bucket counts at scrape time (e.g. aggregated in SQL). */
  read: () => Promise<BucketRow[]>;
}

/**
 * A histogram whose buckets are computed at scrape time from stored facts instead of observed
 * one value at a time. prom-client's Histogram can only `observe()`, which would mean reading
 * every row on every scrape; this registers the same metric shape (`get()`, as the Registry
 * reads it) from counts aggregated by the database.
 */
export function registerComputedHistogram(registry: Registry, options: ComputedHistogramOptions): void {
  const metric = {
    name: options.name,
    help: options.help,
    type: 'histogram' as const,
    aggregator: 'sum' as const,
    get: async () => ({
      name: options.name,
      help: options.help,
      type: 'histogram' as const,
      aggregator: 'sum' as const,
      values: histogramSeries(options.name, options.bounds, await options.read(), options.labelNames),
    }),
  };
  // The Registry only calls get() (and reads name/help/type); its Metric type lists the four
  // built-in classes, none of which can be fed precomputed buckets.
  registry.registerMetric(metric as unknown as Metric);
}
