import { ForgeStatusError, describeForgeErrorBody, redact } from './errors';
import { type StatusRequest, buildStatusRequest } from './requests';
import type { CommitStatus, ForgeTarget } from './types';
import { jitteredBackoff, parseRetryAfter } from '@farm/http';

/** Options of {@link ForgeStatusReporter}. */
export interface ForgeStatusReporterOptions {
  /** Give up on one attempt after this long without a complete answer (default 10 s). */
  timeoutMs?: number;
  /** Further attempts after a 429, 5xx, rate limit, connection error or timeout (default 3). */
  retries?: number;
  /** Sent as `User-Agent`; GitHub refuses requests without one (default `buildfarm`). */
  userAgent?: string;
}

const RETRYABLE_STATUS: ReadonlySet<number> = new Set([408, 429, 500, 502, 503, 504]);
const BASE_DELAY_MS = 250;
const MAX_DELAY_MS = 8_000;
/** A forge asking for a longer pause than this is better retried later by the caller (BullMQ). */
const MAX_WAIT_MS = 30_000;
const MAX_REDIRECTS = 3;
const MAX_ERROR_BODY = 64 * 1024;

/**
 * Reports commit statuses to GitHub (and GitHub Enterprise), GitLab and Gitea / Forgejo over
 * their REST APIs with global `fetch`. Retries 429, 5xx, rate limits and connection errors with
 * backoff; anything else the forge refuses becomes a {@link ForgeStatusError} carrying the
 * forge's message. The token is sent only to the configured API origin and never appears in
 * an error.
 */
export class ForgeStatusReporter {
  private readonly timeoutMs: number;
  private readonly retries: number;
  private readonly userAgent: string;

  constructor(opts: ForgeStatusReporterOptions = {}) {
    this.timeoutMs = opts.timeoutMs ?? 10_000;
    if (!(this.timeoutMs > 0)) throw new Error('timeoutMs must be a positive number');
    this.retries = Math.max(0, Math.floor(opts.retries ?? 3));
    this.userAgent = opts.userAgent ?? 'buildfarm';
  }

  /**
   * Sets one commit status (e.g. `buildfarm/linux-arm64` = pending) on the target's repository.
   * Reporting the same status twice is harmless.
   *
   * @throws ForgeStatusError when the forge refuses it (`status` set), cannot be reached after the
   *   retries (`retryable` true), or the target or status is malformed.
   */
  async report(target: ForgeTarget, status: CommitStatus): Promise<void> {
    const request = buildStatusRequest(target, status, this.userAgent);
    const what = `${target.forge} status ${JSON.stringify(status.context)} for ${target.repository}@${status.commit.slice(0, 12)}`;
    for (let attempt = 0; ; attempt++) {
      try {
        await this.send(request, what);
        return;
      } catch (err) {
        const error = toForgeError(err, what);
        const safe = redactError(error, target.token);
        if (!safe.retryable || attempt >= this.retries) throw safe;
        const delay = retryDelay(attempt, safe.retryAfterMs);
        if (delay === undefined) throw safe;
        await new Promise((resolve) => setTimeout(resolve, delay));
      }
    }
  }

  private async send(request: StatusRequest, what: string): Promise<void> {
    let url = request.url;
    for (let hop = 0; ; hop++) {
      let res: Response;
      try {
        res = await fetch(url, {
          method: 'POST',
          headers: request.headers,
          body: request.body,
          // Redirects are followed by hand, to the same origin only: the token must not leave it.
          redirect: 'manual',
          signal: AbortSignal.timeout(this.timeoutMs),
        });
      } catch (err) {
        throw networkError(what, err, this.timeoutMs);
      }
      if (res.ok) {
        await res.body?.cancel();
        return;
      }
      if ((res.status === 307 || res.status === 308) && hop < MAX_REDIRECTS) {
        const next = sameOriginLocation(url, res.headers.get('location'));
        await res.body?.cancel();
        if (next) {
          url = next;
          continue;
        }
        throw new ForgeStatusError(`${what}: HTTP ${res.status} redirect to another origin; check the API URL`, {
          status: res.status,
        });
      }
      let text: string;
      try {
        text = await readLimited(res);
      } catch (err) {
        throw networkError(what, err, this.timeoutMs);
      }
      if (request.alreadyApplied(res.status, text)) return;
      throw errorFromResponse(what, res, text);
    }
  }
}

function sameOriginLocation(from: URL, location: string | null): URL | undefined {
  if (!location) return undefined;
  try {
    const next = new URL(location, from);
    return next.origin === from.origin ? next : undefined;
  } catch {
    return undefined;
  }
}

async function readLimited(res: Response): Promise<string> {
  if (!res.body) return '';
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of res.body) {
    chunks.push(Buffer.from(chunk));
    size += chunk.length;
    if (size >= MAX_ERROR_BODY) break;
  }
  return Buffer.concat(chunks).subarray(0, MAX_ERROR_BODY).toString('utf8');
}

function errorFromResponse(what: string, res: Response, text: string): ForgeStatusError {
  const words = describeForgeErrorBody(text);
  const retryAfterMs = parseRetryAfter(res.headers.get('retry-after'));
  // GitHub's rate limits answer 403 (or 429) with x-ratelimit-remaining: 0 or a Retry-After.
  const rateLimited =
    res.status === 403 && (res.headers.get('x-ratelimit-remaining') === '0' || retryAfterMs !== undefined);
  return new ForgeStatusError(`${what}: HTTP ${res.status}${words ? ` ${words}` : ''}`, {
    status: res.status,
    retryable: RETRYABLE_STATUS.has(res.status) || rateLimited,
    retryAfterMs: retryAfterMs ?? (rateLimited ? parseRateLimitReset(res.headers.get('x-ratelimit-reset')) : undefined),
  });
}

function networkError(what: string, err: unknown, timeoutMs: number): ForgeStatusError {
  // Duck-typed: fetch's errors may come from another realm (jest's vm), where instanceof fails.
  const outer = err as { name?: unknown; cause?: unknown; message?: unknown } | null;
  if (outer?.name === 'TimeoutError') {
    return new ForgeStatusError(`${what}: no answer within ${timeoutMs} ms`, { retryable: true, cause: err });
  }
  const cause = (outer?.cause ?? err) as { code?: unknown; message?: unknown } | null;
  const reason =
    typeof cause?.code === 'string' ? cause.code : typeof cause?.message === 'string' ? cause.message : String(cause);
  return new ForgeStatusError(`${what}: connection failed (${reason})`, { retryable: true, cause: err });
}

function toForgeError(err: unknown, what: string): ForgeStatusError {
  if (err instanceof ForgeStatusError) return err;
  return new ForgeStatusError(`${what}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
}

/** The same error with the token blanked out of its message, should the forge have echoed it. */
function redactError(error: ForgeStatusError, token: string): ForgeStatusError {
  const message = redact(error.message, token);
  if (message === error.message) return error;
  return new ForgeStatusError(message, {
    status: error.status,
    retryable: error.retryable,
    retryAfterMs: error.retryAfterMs,
  });
}

/** Backoff with jitter, or the forge's `Retry-After` when longer; undefined when that is too long to wait. */
function retryDelay(attempt: number, retryAfterMs?: number): number | undefined {
  if (retryAfterMs !== undefined && retryAfterMs > MAX_WAIT_MS) return undefined;
  return Math.max(jitteredBackoff(attempt, BASE_DELAY_MS, MAX_DELAY_MS), retryAfterMs ?? 0);
}

/** GitHub's `x-ratelimit-reset` (epoch seconds) as a delay from now. */
function parseRateLimitReset(value: string | null, now = Date.now()): number | undefined {
  if (!value || !/^\d+$/.test(value.trim())) return undefined;
  return Math.max(0, Number(value.trim()) * 1000 - now);
}
