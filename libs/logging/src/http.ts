import { AsyncResource } from 'node:async_hooks';
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { runWithLogContext, type LogFields } from './context';

export const REQUEST_ID_HEADER = 'x-request-id';

/** A caller's id is kept when it is short and plain, so it cannot forge log lines. */
const ACCEPTABLE_REQUEST_ID = /^[A-Za-z0-9._:@-]{1,128}$/;

export interface RequestLoggingOptions {
  /** Extra context from the request itself, e.g. `{ buildId }` from `/v1/builds/<id>`. */
  contextFrom?: (path: string) => LogFields;
  /** Paths probed often (health, metrics): their completion is logged at debug, not info. */
  quietPaths?: readonly string[];
}

/**
 * Connect/Express middleware: every request gets an id (the caller's `X-Request-Id`, or a new
 * UUID), answered in the `X-Request-Id` response header and carried by every log line written
 * while the request is handled; one line per request when it completes. Headers and bodies are
 * not logged.
 */
export function requestLogging(logger: Logger, options: RequestLoggingOptions = {}) {
  const quiet = new Set(options.quietPaths ?? []);
  return (request: IncomingMessage, response: ServerResponse, next: () => void): void => {
    const given = request.headers[REQUEST_ID_HEADER];
    const requestId = typeof given === 'string' && ACCEPTABLE_REQUEST_ID.test(given) ? given : randomUUID();
    response.setHeader('X-Request-Id', requestId);
    const url = request.url ?? '/';
    const path = url.split('?')[0];
    const started = process.hrtime.bigint();
    runWithLogContext({ requestId, ...options.contextFrom?.(path) }, () => {
      // 'close' (after the response was sent, or when the client went away, e.g. from a log
      // stream) is emitted outside the request's async context: bind the listener to it, so the
      // line carries the request's fields, including those added while it was handled.
      response.once(
        'close',
        AsyncResource.bind(() => {
          const durationMs = Number(process.hrtime.bigint() - started) / 1e6;
          const aborted = !response.writableFinished;
          const line = { method: request.method, url, status: response.statusCode, durationMs, aborted };
          const level = quiet.has(path) ? 'debug' : 'info';
          const outcome = aborted ? `${response.statusCode} (client went away)` : response.statusCode;
          logger[level](line, `${request.method} ${path} ${outcome}`);
        }),
      );
      next();
    });
  };
}
