import { hostname } from 'node:os';
import { pino, stdTimeFunctions, type DestinationStream, type Level, type Logger } from 'pino';
import { logContext } from './context';

export type { Logger } from 'pino';

/**
 * Paths pino replaces with "[redacted]" wherever they occur in a logged object: credentials in
 * headers (ours and the forges'), tokens and secrets by name, and request bodies (a webhook body
 * is the forge's payload, not ours to keep). One level deep (`*.x`) covers `{ req: { headers } }`
 * as well as `{ headers }`.
 */
export const REDACT_PATHS: readonly string[] = [
  // Node lowercases incoming header names; objects built by hand may not.
  ...['authorization', 'cookie', 'set-cookie', 'x-gitlab-token', 'proxy-authorization']
    .flatMap((header) => [header, header.replace(/(^|-)[a-z]/g, (start) => start.toUpperCase())])
    .flatMap((header) => [`headers["${header}"]`, `*.headers["${header}"]`]),
  ...['token', 'adminToken', 'password', 'secret', 'webhookSecret', 'forgeToken', 'privateKey', 'body'].flatMap(
    (key) => [key, `*.${key}`],
  ),
];

export const REDACTED = '[redacted]';

/** `Bearer abc` -> `Bearer [redacted]`; `redis://user:pass@host` -> `redis://user:[redacted]@host`. */
export function scrubSecrets(text: string): string {
  return text
    .replace(/\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]{8,}/gi, `$1 ${REDACTED}`)
    .replace(/(\b[a-z][a-z0-9+.-]*:\/\/[^\s/:@]*:)[^\s/@]+@/gi, `$1${REDACTED}@`);
}

export interface CreateLoggerOptions {
  /** The process: api, coordinator or agent. Every line carries it as `service`. */
  name: string;
  /** LOG_LEVEL (fatal, error, warn, info, debug, silent); default info. */
  level?: string;
  /** Where lines go; default stdout. */
  destination?: DestinationStream;
}

/**
 * A pino logger writing one JSON object per line: `level` as a word, an ISO `time`, `service`,
 * the fields of the current log context (request id, build id: see runWithLogContext) and
 * secrets redacted (REDACT_PATHS, and tokens or URL passwords inside messages).
 */
export function createLogger(options: CreateLoggerOptions): Logger {
  return pino(
    {
      level: (options.level ?? 'info') as Level | 'silent',
      base: { service: options.name, pid: process.pid, hostname: hostname() },
      timestamp: stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      // A copy: pino merges each line's own fields into what mixin returns.
      mixin: () => ({ ...logContext() }),
      redact: { paths: [...REDACT_PATHS], censor: REDACTED },
      hooks: {
        logMethod(args, method) {
          const scrubbed = args.map((arg: unknown) => (typeof arg === 'string' ? scrubSecrets(arg) : arg));
          return method.apply(this, scrubbed as Parameters<typeof method>);
        },
      },
    },
    options.destination ?? pino.destination({ dest: 1, sync: true }),
  );
}
