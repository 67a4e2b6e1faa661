/** Summary statistics over a handful of timings (milliseconds). */
export interface Summary {
  n: number;
  min: number;
  median: number;
  /** Nearest-rank 90th percentile: with fewer than 10 samples it is the maximum. */
  p90: number;
  max: number;
}

export function summarize(samples: number[]): Summary {
  if (samples.length === 0) throw new Error('no samples');
  const sorted = [...samples].sort((a, b) => a - b);
  return {
    n: sorted.length,
    min: sorted[0],
    median: median(sorted),
    p90: sorted[Math.ceil(0.9 * sorted.length) - 1],
    max: sorted[sorted.length - 1],
  };
}

export function median(samples: number[]): number {
  const sorted = [...samples].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

/** Milliseconds for tables: whole numbers, no unit. */
export function ms(value: number): string {
  return Math.round(value).toString();
}

/** Nearest-rank percentile (`p` from 0 to 100) of the samples. */
export function percentile(samples: number[], p: number): number {
  if (samples.length === 0) throw new Error('no samples');
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.max(0, Math.ceil((p / 100) * sorted.length) - 1)];
}
