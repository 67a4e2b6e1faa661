import type { Server } from 'node:http';
import type { Duplex } from 'node:stream';
import type { NextFunction, Request, Response } from 'express';
import { ApiError } from './api-error';

/**
 * Checks on the shape of a request that come before any route sees it: a body is JSON, no
 * `__proto__` key hides in it, and requests Node's HTTP parser refuses still get the documented
 * error body. Found by the hostile-input battery (test/e2e/hostile-input.spec.ts).
 */

/** Nesting beyond this is not searched for prototype keys (the body limit bounds it anyway). */
const MAX_DEPTH = 32;

/**
 * The path of the first prototype-polluting key in a parsed JSON body or query, e.g.
 * `labels.__proto__`: `__proto__`, or `constructor` holding an object (`constructor.prototype`).
 * JSON.parse makes them own properties; merged later, they would reach a prototype.
 * class-transformer drops them silently, so without this check they would pass as no field at all.
 */
export function prototypeKeyIn(value: unknown, path = '', depth = 0): string | undefined {
  if (typeof value !== 'object' || value === null || depth > MAX_DEPTH) return undefined;
  for (const key of Object.keys(value)) {
    const here = path ? `${path}.${key}` : key;
    const item = (value as Record<string, unknown>)[key];
    if (key === '__proto__' || (key === 'constructor' && typeof item === 'object' && item !== null)) return here;
    const nested = prototypeKeyIn(item, here, depth + 1);
    if (nested) return nested;
  }
  return undefined;
}

/**
 * A request that carries a body must say it is JSON, except on the paths `exempt` names
 * (webhooks, uploads): the JSON parser leaves any other body alone, and the route would then
 * act on an empty body (a PATCH "succeeding" with no change, say).
 */
export function requireJsonBodies(exempt: (path: string) => boolean) {
  return (request: Request, response: Response, next: NextFunction): void => {
    const hasBody =
      request.headers['transfer-encoding'] !== undefined ||
      (request.headers['content-length'] !== undefined && request.headers['content-length'] !== '0');
    if (!hasBody || exempt(request.path) || request.is(['application/json', 'application/*+json'])) return next();
    const error = new ApiError('invalid_request', 'the request body must be JSON (Content-Type: application/json)');
    response.status(error.getStatus()).json(error.body());
  };
}

/**
 * Requests Node's HTTP parser refuses (a URL or headers over its 16 KiB limit, malformed
 * request lines) are answered by Node itself with an empty 431 or 400: answer them with the
 * documented error body instead.
 */
export function answerMalformedRequests(server: Server): void {
  server.on('clientError', (error: NodeJS.ErrnoException, socket: Duplex) => {
    if (error.code === 'ECONNRESET' || !socket.writable) {
      socket.destroy();
      return;
    }
    if (error.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
      socket.end('HTTP/1.1 408 Request Timeout\r\nConnection: close\r\n\r\n');
      return;
    }
    const message =
      error.code === 'HPE_HEADER_OVERFLOW'
        ? 'the request line and headers must fit in 16 KiB'
        : 'the request is not valid HTTP';
    const body = JSON.stringify(new ApiError('invalid_request', message).body());
    socket.end(
      'HTTP/1.1 400 Bad Request\r\nContent-Type: application/json; charset=utf-8\r\n' +
        `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    );
  });
}
