import { Injectable, SetMetadata, type CanActivate, type ExecutionContext } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import { createHash, timingSafeEqual } from 'node:crypto';
import type { Request } from 'express';
import { ApiError } from './api-error';

const PUBLIC = 'farm:public';
/** Routes anyone may call (health probes). Everything else needs a bearer token. */
export const Public = () => SetMetadata(PUBLIC, true);

export const ADMIN_TOKEN = Symbol('ADMIN_TOKEN');

/** Compares digests so neither length nor content of the token leaks through timing. */
function sameSecret(given: string, expected: string): boolean {
  const a = createHash('sha256').update(given).digest();
  const b = createHash('sha256').update(expected).digest();
  return timingSafeEqual(a, b);
}

/**
 * Bearer-token authentication. Scoped API tokens come with the security work; until then the
 * bootstrap admin token (FARM_ADMIN_TOKEN) is the only credential.
 */
@Injectable()
export class AuthGuard implements CanActivate {
  constructor(
    private readonly reflector: Reflector,
    private readonly adminToken: string,
  ) {}

  canActivate(context: ExecutionContext): boolean {
    if (this.reflector.getAllAndOverride<boolean>(PUBLIC, [context.getHandler(), context.getClass()])) return true;
    const header = context.switchToHttp().getRequest<Request>().headers.authorization ?? '';
    const match = /^Bearer\s+(\S+)$/i.exec(header);
    if (!match) throw new ApiError('unauthorized', 'missing bearer token (Authorization: Bearer <token>)');
    if (!sameSecret(match[1], this.adminToken)) throw new ApiError('unauthorized', 'unknown token');
    return true;
  }
}
