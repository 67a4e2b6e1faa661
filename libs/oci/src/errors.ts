/** Options for {@link RegistryError}. */
import { parseRetryAfter } from '@farm/http';
export interface RegistryErrorOptions {
  status?: number;
  code?: string;
  retryable?: boolean;
  retryAfterMs?: number;
  cause?: unknown;
}

/**
 * A registry (or its token server) refused a request, or could not be reached.
 * The message carries the registry's own words (`errors[0]` of its error body); it never
 * contains credentials or tokens.
 */
export class RegistryError extends Error {
  /** HTTP status, when the registry answered. */
  readonly status?: number;
  /** The registry's error code, e.g. `MANIFEST_BLOB_UNKNOWN`, `UNAUTHORIZED`, `DENIED`. */
  readonly code?: string;
  /** True when trying again later may succeed: 429, 5xx, connection errors, timeouts. */
  readonly retryable: boolean;
  /** What the registry asked for in `Retry-After`. */
  readonly retryAfterMs?: number;

  constructor(message: string, options: RegistryErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'RegistryError';
    this.status = options.status;
    this.code = options.code;
    this.retryable = options.retryable ?? false;
    this.retryAfterMs = options.retryAfterMs;
  }
}

const RETRYABLE_STATUS = new Set([408, 429, 500, 502, 503, 504]);

/** True for statuses worth another attempt after a pause. */
export function isRetryableStatus(status: number): boolean {
  return RETRYABLE_STATUS.has(status);
}

/** Reads `errors[0]` of a distribution error body, or the first words of a non-JSON body. */
export function describeErrorBody(text: string): { code?: string; message?: string } {
  try {
    const body = JSON.parse(text) as {
      errors?: { code?: unknown; message?: unknown; detail?: unknown }[];
      details?: unknown;
    };
    const first = Array.isArray(body.errors) ? body.errors[0] : undefined;
    if (first) {
      const code = typeof first.code === 'string' ? first.code : undefined;
      let message = typeof first.message === 'string' ? first.message : '';
      const detail = formatDetail(first.detail);
      if (detail) message = message ? `${message} (${detail})` : detail;
      return { code, message: message || undefined };
    }
    // Token servers (docker/distribution's auth spec) answer `{"details": "..."}`.
    if (typeof body.details === 'string') return { message: body.details };
  } catch {
    // Not JSON: fall through to the raw text.
  }
  const raw = text.replace(/\s+/g, ' ').trim();
  return { message: raw ? truncate(raw, 200) : undefined };
}

function formatDetail(detail: unknown): string {
  if (detail === undefined || detail === null || detail === '') return '';
  return truncate(typeof detail === 'string' ? detail : JSON.stringify(detail), 300);
}

function truncate(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max)}...` : text;
}

/** Builds the error for an unexpected HTTP answer. `what` names the request without secrets. */
export function errorFromResponse(
  what: string,
  status: number,
  headers: Headers,
  bodyText: string,
  hint?: string,
): RegistryError {
  const { code, message } = describeErrorBody(bodyText);
  const words = [code, message].filter(Boolean).join(': ');
  return new RegistryError(`${what}: HTTP ${status}${words ? ` ${words}` : ''}${hint ? ` (${hint})` : ''}`, {
    status,
    code,
    retryable: isRetryableStatus(status),
    retryAfterMs: parseRetryAfter(headers.get('retry-after')),
  });
}
