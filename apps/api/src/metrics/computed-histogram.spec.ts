import { Registry } from 'prom-client';
import { histogramSeries, registerComputedHistogram } from './computed-histogram';

describe('computed histograms', () => {
  const bounds = [1, 5, 10];

  test('per-bucket counts become cumulative buckets, +Inf, sum and count per label set', () => {
    const values = histogramSeries(
      'x_seconds',
      bounds,
      [
        { labels: { platform: 'linux/amd64' }, bucket: 0, count: 2, sum: 1.5 },
        { labels: { platform: 'linux/amd64' }, bucket: 2, count: 1, sum: 7 },
        { labels: { platform: 'linux/amd64' }, bucket: 3, count: 1, sum: 60 },
        { labels: { platform: 'linux/arm64' }, bucket: 1, count: 3, sum: 9 },
      ],
      ['platform'],
    );
    const amd64 = values
      .filter((v) => v.labels.platform === 'linux/amd64')
      .map((v) => [v.metricName, v.labels.le, v.value]);
    expect(amd64).toEqual([
      ['x_seconds_bucket', 1, 2],
      ['x_seconds_bucket', 5, 2],
      ['x_seconds_bucket', 10, 3],
      ['x_seconds_bucket', '+Inf', 4],
      ['x_seconds_sum', undefined, 68.5],
      ['x_seconds_count', undefined, 4],
    ]);
    const arm64 = values.filter((v) => v.labels.platform === 'linux/arm64').map((v) => v.value);
    expect(arm64).toEqual([0, 3, 3, 3, 9, 3]);
  });

  test('the registry renders them in the Prometheus text format', async () => {
    const registry = new Registry();
    registerComputedHistogram(registry, {
      name: 'x_seconds',
      help: 'Something timed.',
      labelNames: [],
      bounds,
      read: async () => [{ labels: {}, bucket: 1, count: 1, sum: 2.5 }],
    });
    expect(await registry.metrics()).toBe(
      [
        '# HELP x_seconds Something timed.',
        '# TYPE x_seconds histogram',
        'x_seconds_bucket{le="1"} 0',
        'x_seconds_bucket{le="5"} 1',
        'x_seconds_bucket{le="10"} 1',
        'x_seconds_bucket{le="+Inf"} 1',
        'x_seconds_sum 2.5',
        'x_seconds_count 1',
        '',
      ].join('\n'),
    );
  });

  test('before anything was observed, a label-less histogram reports zeros and a labelled one nothing', () => {
    expect(histogramSeries('x_seconds', bounds, [], []).map((v) => v.value)).toEqual([0, 0, 0, 0, 0, 0]);
    expect(histogramSeries('x_seconds', bounds, [], ['platform'])).toEqual([]);
  });
});
