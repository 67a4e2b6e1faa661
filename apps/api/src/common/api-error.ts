import { HttpException } from '@nestjs/common';

/** The documented error codes of REST v1 and the status each answers with. */
export const ERROR_STATUS = {
  invalid_request: 400,
  unauthorized: 401,
  forbidden: 403,
  not_found: 404,
  conflict: 409,
  payload_too_large: 413,
  unprocessable: 422,
  too_many_requests: 429,
  unavailable: 503,
  internal: 500,
} as const;

export type ErrorCode = keyof typeof ERROR_STATUS;

/** Body of every error answer: `{"error": {"code", "message", "field"?}}` (DESIGN.md). */
export interface ErrorBody {
  error: { code: ErrorCode; message: string; field?: string };
}

/** An error meant for the client; the exception filter renders it as the documented body. */
export class ApiError extends HttpException {
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly field?: string,
  ) {
    super(message, ERROR_STATUS[code]);
  }

  body(): ErrorBody {
    return { error: { code: this.code, message: this.message, ...(this.field ? { field: this.field } : {}) } };
  }
}
