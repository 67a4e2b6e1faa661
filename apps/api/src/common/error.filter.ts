import { Catch, HttpException, Logger, type ArgumentsHost, type ExceptionFilter } from '@nestjs/common';
import type { Response } from 'express';
import { isDatabaseUnavailable } from '@farm/db';
import { ApiError, type ErrorCode } from './api-error';

const CODE_BY_STATUS: Record<number, ErrorCode> = {
  400: 'invalid_request',
  401: 'unauthorized',
  403: 'forbidden',
  404: 'not_found',
  409: 'conflict',
  413: 'payload_too_large',
  422: 'unprocessable',
  429: 'too_many_requests',
  503: 'unavailable',
};

/**
 * What a client is told to wait before retrying a 503 that gives no time itself: PostgreSQL or
 * Redis coming back (a restart, a failover) takes seconds.
 */
const UNAVAILABLE_RETRY_AFTER_SECONDS = 5;

/** Errors thrown by body-parser (malformed JSON, body too large) carry a status and a type. */
interface BodyParserError {
  status?: number;
  type?: string;
}

/** Turns every error into the documented error body; unexpected ones are logged and answer 500. */
@Catch()
export class ErrorFilter implements ExceptionFilter {
  private readonly logger = new Logger('http');

  catch(exception: unknown, host: ArgumentsHost): void {
    const response = host.switchToHttp().getResponse<Response>();
    const error = this.toApiError(exception);
    if (error.code === 'internal') {
      this.logger.error(exception instanceof Error ? (exception.stack ?? exception.message) : String(exception));
    }
    if (response.headersSent) {
      response.end();
      return;
    }
    if (error.code === 'unavailable' && !response.getHeader('retry-after')) {
      response.setHeader('Retry-After', String(UNAVAILABLE_RETRY_AFTER_SECONDS));
    }
    response.status(error.getStatus()).json(error.body());
  }

  private toApiError(exception: unknown): ApiError {
    if (exception instanceof ApiError) return exception;
    // PostgreSQL down or restarting is the farm's outage, not a bug: 503, the client may retry.
    if (isDatabaseUnavailable(exception)) {
      return new ApiError('unavailable', 'the database is unavailable; try again shortly');
    }
    if (exception instanceof HttpException) {
      const status = exception.getStatus();
      return new ApiError(CODE_BY_STATUS[status] ?? 'internal', this.httpMessage(exception));
    }
    const parserError = exception as BodyParserError;
    if (parserError?.type === 'entity.parse.failed')
      return new ApiError('invalid_request', 'request body is not valid JSON');
    if (parserError?.type === 'entity.too.large') return new ApiError('payload_too_large', 'request body is too large');
    if (parserError?.status && CODE_BY_STATUS[parserError.status]) {
      return new ApiError(CODE_BY_STATUS[parserError.status], (exception as Error).message);
    }
    return new ApiError('internal', 'internal error');
  }

  private httpMessage(exception: HttpException): string {
    const response = exception.getResponse();
    if (typeof response === 'string') return response;
    const message = (response as { message?: unknown }).message;
    if (Array.isArray(message)) return message.join('; ');
    return typeof message === 'string' ? message : exception.message;
  }
}
