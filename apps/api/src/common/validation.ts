import { ValidationPipe, type ArgumentMetadata, type ValidationError } from '@nestjs/common';
import { ApiError } from './api-error';
import { prototypeKeyIn } from './request-shape';

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

const PRIMITIVES: unknown[] = [String, Number, Boolean, Array, Object];

/**
 * Refuses, before class-transformer sees them, what it would let through: a body that is not a
 * JSON object (an array or a string), and prototype keys (`__proto__`, `constructor.prototype`),
 * which it drops silently instead of reporting them as unknown fields.
 */
class FarmValidationPipe extends ValidationPipe {
  override async transform(value: unknown, metadata: ArgumentMetadata): Promise<unknown> {
    if (metadata.type === 'body' || metadata.type === 'query') {
      const key = prototypeKeyIn(value);
      if (key) throw new ApiError('invalid_request', `${key} is not allowed: a prototype key`, key);
    }
    const isDto = typeof metadata.metatype === 'function' && !PRIMITIVES.includes(metadata.metatype);
    if (metadata.type === 'body' && isDto && value !== undefined) {
      if (typeof value !== 'object' || value === null || Array.isArray(value)) {
        throw new ApiError('invalid_request', 'the request body must be a JSON object');
      }
    }
    return super.transform(value, metadata);
  }
}

/** The global pipe: DTOs validated, unknown fields refused, answered as the documented error body. */
export function createValidationPipe(): ValidationPipe {
  return new FarmValidationPipe({
    transform: true,
    whitelist: true,
    forbidNonWhitelisted: true,
    exceptionFactory: (errors) => {
      const problem = firstProblem(errors) ?? { field: undefined, message: 'invalid request' };
      return new ApiError('invalid_request', problem.message, problem.field);
    },
  });
}
