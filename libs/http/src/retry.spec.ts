import { jitteredBackoff, parseRetryAfter } from './index';

describe('parseRetryAfter', () => {
  it('parses Retry-After seconds and dates', () => {
    const now = Date.parse('2025-01-01T00:00:00Z');
    expect(parseRetryAfter('5', now)).toBe(5000);
    expect(parseRetryAfter('Wed, 01 Jan 2025 00:00:03 GMT', now)).toBe(3000);
    expect(parseRetryAfter('Tue, 31 Dec 2024 00:00:00 GMT', now)).toBe(0);
    expect(parseRetryAfter('soon', now)).toBeUndefined();
    expect(parseRetryAfter(null, now)).toBeUndefined();
  });

  it('reads seconds and HTTP dates relative to now', () => {
    expect(parseRetryAfter('3')).toBe(3000);
    expect(parseRetryAfter(new Date(10_000).toUTCString(), 4_000)).toBe(6000);
  });
});

describe('jitteredBackoff', () => {
  it('doubles from the base up to the cap, jittered in the upper half', () => {
    for (let attempt = 0; attempt < 8; attempt++) {
      const cap = Math.min(8000, 250 * 2 ** attempt);
      const delay = jitteredBackoff(attempt, 250, 8000);
      expect(delay).toBeGreaterThanOrEqual(cap / 2);
      expect(delay).toBeLessThanOrEqual(cap);
    }
  });
});
