/** Options for {@link ForgeStatusError}. */
export interface ForgeStatusErrorOptions {
  status?: number;
  retryable?: boolean;
  retryAfterMs?: number;
  cause?: unknown;
}

/**
 * A commit status could not be reported: the forge refused it (the message carries the forge's
 * own words), could not be reached, or the target / status given was malformed.
 * The message never contains the API token.
 */
export class ForgeStatusError extends Error {
  /** HTTP status, when the forge answered. */
  readonly status?: number;
  /** True when trying again later may succeed: 429, 5xx, rate limits, connection errors, timeouts. */
  readonly retryable: boolean;
  /** How long the forge asked us to wait (`Retry-After`, GitHub's `x-ratelimit-reset`). */
  readonly retryAfterMs?: number;

  constructor(message: string, options: ForgeStatusErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'ForgeStatusError';
    this.status = options.status;
    this.retryable = options.retryable ?? false;
    this.retryAfterMs = options.retryAfterMs;
  }
}

const MAX_MESSAGE = 300;

/**
 * The forge's own words from an error body:
 * GitHub `{message, errors: [{message} | {resource, field, code}]}`,
 * GitLab `{message: "..." | {field: ["..."]}}` or `{error: "..."}`,
 * Gitea `{message, errors?: ["..."]}`; otherwise the first words of the body.
 */
export function describeForgeErrorBody(text: string): string | undefined {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    const raw = text.replace(/\s+/g, ' ').trim();
    return raw ? cut(raw, 200) : undefined;
  }
  if (typeof body !== 'object' || body === null) return undefined;
  const { message, error, errors } = body as { message?: unknown; error?: unknown; errors?: unknown };
  const parts: string[] = [];
  if (typeof message === 'string') parts.push(message);
  else if (typeof message === 'object' && message !== null) parts.push(...fieldMessages(message));
  if (typeof error === 'string') parts.push(error);
  if (Array.isArray(errors)) parts.push(...errors.map(describeErrorItem).filter((s) => s !== ''));
  const words = parts.join(': ').replace(/\s+/g, ' ').trim();
  return words ? cut(words, MAX_MESSAGE) : undefined;
}

// GitLab validation errors: {"message": {"description": ["is too long"]}}.
function fieldMessages(message: object): string[] {
  return Object.entries(message).map(([field, value]) => {
    const texts = Array.isArray(value) ? value.map(String) : [String(value)];
    return `${field} ${texts.join(', ')}`;
  });
}

function describeErrorItem(item: unknown): string {
  if (typeof item === 'string') return item;
  if (typeof item !== 'object' || item === null) return '';
  const { message, field, code } = item as { message?: unknown; field?: unknown; code?: unknown };
  if (typeof message === 'string') return message;
  return [field, code].filter((s) => typeof s === 'string').join(' ');
}

function cut(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max)}…` : text;
}

/** Replaces every occurrence of `secret` in `text`: a forge may echo what it was sent. */
export function redact(text: string, secret: string): string {
  return secret ? text.split(secret).join('***') : text;
}
