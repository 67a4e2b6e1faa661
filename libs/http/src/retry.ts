/** Retry timing shared by the farm's HTTP clients (registries, forges). Pure functions. */

/** `Retry-After` as milliseconds: delay-seconds or an HTTP date; undefined when absent or unreadable. */
export function parseRetryAfter(value: string | null, now = Date.now()): number | undefined {
  if (!value) return undefined;
  const trimmed = value.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed) * 1000;
  const at = Date.parse(trimmed);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

/**
 * Exponential backoff from `baseMs`, capped at `maxMs`, with jitter in its upper half so that
 * clients failing together do not retry together.
 */
export function jitteredBackoff(attempt: number, baseMs: number, maxMs: number): number {
  const backoff = Math.min(maxMs, baseMs * 2 ** attempt);
  return backoff / 2 + Math.random() * (backoff / 2);
}
