import { ValidationPipe, type ValidationError } from '@nestjs/common';
import { ApiError } from './api-error';

function firstProblem(errors: ValidationError[], parent = ''): { field: string; message: string } | undefined {
  for (const error of errors) {
    const field = parent ? `${parent}.${error.property}` : error.property;
    const message = error.constraints ? Object.values(error.constraints)[0] : undefined;
    if (message) return { field, message };
    const nested = firstProblem(error.children ?? [], field);
    if (nested) return nested;
  }
  return undefined;
}

/** The global pipe: DTOs validated, unknown fields refused, answered as the documented error body. */
export function createValidationPipe(): ValidationPipe {
  return new ValidationPipe({
    transform: true,
    whitelist: true,
    forbidNonWhitelisted: true,
    exceptionFactory: (errors) => {
      const problem = firstProblem(errors) ?? { field: undefined, message: 'invalid request' };
      return new ApiError('invalid_request', problem.message, problem.field);
    },
  });
}
