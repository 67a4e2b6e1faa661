import { RegistryError } from './errors';
import { jitteredBackoff } from '@farm/http';

/** Aborts a request after `ms` without progress; every chunk sent or received is progress. */
export class IdleTimer {
  private readonly controller = new AbortController();
  private timer?: NodeJS.Timeout;
  timedOut = false;

  constructor(private readonly ms: number) {
    this.touch();
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  touch(): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timedOut = true;
      this.controller.abort();
    }, this.ms);
    // A stalled request must not be what keeps the process alive.
    this.timer.unref();
  }

  stop(): void {
    clearTimeout(this.timer);
  }
}

/** Turns a failed `fetch` (no HTTP answer) into a retryable RegistryError. */
export function networkError(what: string, err: unknown, timer: IdleTimer, timeoutMs: number): RegistryError {
  if (timer.timedOut) {
    return new RegistryError(`${what}: no progress for ${timeoutMs} ms`, { retryable: true, cause: err });
  }
  // Duck-typed: fetch's errors may come from another realm (jest's vm), where instanceof fails.
  const outer = err as { cause?: unknown; message?: unknown } | null;
  const cause = (outer?.cause ?? err) as { code?: unknown; message?: unknown } | null;
  const reason =
    typeof cause?.code === 'string' ? cause.code : typeof cause?.message === 'string' ? cause.message : String(cause);
  return new RegistryError(`${what}: connection failed (${reason})`, { retryable: true, cause: err });
}

const BASE_DELAY_MS = 250;
const MAX_DELAY_MS = 8_000;
const MAX_RETRY_AFTER_MS = 60_000;

/** Exponential backoff with jitter; a `Retry-After` from the server wins when longer. */
export function retryDelay(attempt: number, retryAfterMs?: number): number {
  const jittered = jitteredBackoff(attempt, BASE_DELAY_MS, MAX_DELAY_MS);
  return Math.max(jittered, Math.min(retryAfterMs ?? 0, MAX_RETRY_AFTER_MS));
}

/** Runs `op`, repeating it after a pause while it fails with a retryable RegistryError. */
export async function withRetries<T>(retries: number, op: () => Promise<T>): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await op();
    } catch (err) {
      if (!(err instanceof RegistryError) || !err.retryable || attempt >= retries) throw err;
      await new Promise((resolve) => setTimeout(resolve, retryDelay(attempt, err.retryAfterMs)));
    }
  }
}

/** Reads at most `limit` bytes of a response body as text (error bodies), then lets go of it. */
export async function readLimited(res: Response, timer: IdleTimer, limit = 64 * 1024): Promise<string> {
  if (!res.body) return '';
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of res.body) {
      timer.touch();
      chunks.push(Buffer.from(chunk));
      size += chunk.length;
      if (size >= limit) break;
    }
  } catch {
    // A broken error body must not hide the status that came with it.
  }
  return Buffer.concat(chunks).subarray(0, limit).toString('utf8');
}

/** Runs `fn` over `items` with at most `limit` running at once; fails fast. */
export async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  let failed = false;
  const worker = async (): Promise<void> => {
    while (!failed && next < items.length) {
      const index = next++;
      try {
        results[index] = await fn(items[index]);
      } catch (err) {
        failed = true;
        throw err;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}
