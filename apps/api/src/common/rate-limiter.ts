import { Logger } from '@nestjs/common';
import type { Redis } from 'ioredis';

const WINDOW_MS = 60_000;
/** A Redis slower than this (restarting, failing over) does not hold requests up: they go ahead. */
const REDIS_TIMEOUT_MS = 250;

/** Counts one request in the window's key; the first request of a window sets its expiry. */
const COUNT_SCRIPT = `
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return count`;

export type RateDecision = { allowed: true } | { allowed: false; retryAfterSeconds: number };

/**
 * Requests per subject (an API token, or a client address) per minute, in fixed one-minute
 * windows counted in Redis, so every api replica shares the same counters. A fixed window lets
 * a subject make up to twice the limit across a window boundary; that is the price of one
 * Redis call per request, and fine for a limit meant to stop runaway clients.
 */
export class RateLimiter {
  private readonly logger = new Logger('rate-limit');
  private lastFailureLog = 0;

  constructor(
    private readonly redis: Redis,
    /** The api's Redis key prefix (FARM_QUEUE_PREFIX), so a Redis ACL on `<prefix>:*` covers it. */
    private readonly keyPrefix: string,
    private readonly limitPerMinute: number,
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * Counts a request of `subject` and says whether it may go ahead. When Redis cannot answer
   * (in time), the request goes ahead: the limiter protects the farm, it should not take reads
   * down with Redis (writes fail on their own without it).
   */
  async take(subject: string): Promise<RateDecision> {
    const now = this.now();
    const window = Math.floor(now / WINDOW_MS);
    const windowEndsIn = (window + 1) * WINDOW_MS - now;
    let count: number;
    try {
      const key = `${this.keyPrefix}:ratelimit:${window}:${subject}`;
      // The key outlives its window by a second, so a clock a little behind still finds it.
      count = Number(await withTimeout(this.redis.eval(COUNT_SCRIPT, 1, key, windowEndsIn + 1000)));
    } catch (error) {
      this.logFailure(error);
      return { allowed: true };
    }
    if (count <= this.limitPerMinute) return { allowed: true };
    return { allowed: false, retryAfterSeconds: Math.max(1, Math.ceil(windowEndsIn / 1000)) };
  }

  /** At most one line per 10 s while Redis is away. */
  private logFailure(error: unknown): void {
    if (this.now() - this.lastFailureLog < 10_000) return;
    this.lastFailureLog = this.now();
    this.logger.warn(`rate limit not applied, Redis did not answer: ${(error as Error).message}`);
  }
}

function withTimeout<T>(promise: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${REDIS_TIMEOUT_MS} ms`)), REDIS_TIMEOUT_MS);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
