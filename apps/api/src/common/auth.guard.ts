import {
  applyDecorators,
  createParamDecorator,
  Logger,
  SetMetadata,
  type CanActivate,
  type ExecutionContext,
} from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import { ApiExtension } from '@nestjs/swagger';
import { createHash, timingSafeEqual } from 'node:crypto';
import type { Request, Response } from 'express';
import type { TokenRepository } from '@farm/db';
import { ADMIN_SCOPE, missingScopes, type Scope } from '@farm/domain';
import { hashTokenSecret, looksLikeTokenSecret } from '../api-tokens/token-secret';
import { ApiError } from './api-error';
import type { RateLimiter } from './rate-limiter';

const PUBLIC = 'farm:public';
const SCOPES = 'farm:scopes';

/**
 * Routes anyone may call: health probes, metrics, the dashboard's static files, and webhooks
 * (which the forge's signature authenticates). They are not rate limited here either.
 */
export const Public = () => SetMetadata(PUBLIC, true);

/**
 * The scopes a token needs for a route: all of them (`admin` grants every one). Every route
 * that is not @Public() must declare its scopes, on the handler or its controller (the
 * handler's win); the guard denies a route that declares neither. The OpenAPI document lists
 * them per operation as `x-farm-scopes`.
 */
export const Scopes = (scope: Scope, ...more: Scope[]) =>
  applyDecorators(SetMetadata(SCOPES, [scope, ...more]), ApiExtension('x-farm-scopes', [scope, ...more]));

/** How often at most a token's lastUsedAt is written (per api process, and in the database). */
const LAST_USED_INTERVAL_MS = 60_000;

/** Who made a request: the bootstrap admin token, or an API token from the database. */
interface Caller {
  /** Rate-limit subject: one counter per token. */
  subject: string;
  scopes: readonly string[];
}

/** A request the guard let through, with who made it. */
interface AuthenticatedRequest extends Request {
  caller?: Caller;
}

/**
 * The handler parameter naming who called: `admin` or `token:<id>`, as the guard identified
 * the bearer token (for what is kept per caller, such as idempotency keys).
 */
export const CallerSubject = createParamDecorator((_data: unknown, context: ExecutionContext): string => {
  const caller = context.switchToHttp().getRequest<AuthenticatedRequest>().caller;
  if (!caller) throw new Error('CallerSubject on a route without @Scopes(): no caller was identified');
  return caller.subject;
});

/** Compares digests so neither length nor content of the token leaks through timing. */
function sameSecret(given: string, expected: string): boolean {
  const a = createHash('sha256').update(given).digest();
  const b = createHash('sha256').update(expected).digest();
  return timingSafeEqual(a, b);
}

/**
 * Authentication, scopes and rate limiting for every route (a global guard). A request carries
 * `Authorization: Bearer <token>`: the bootstrap FARM_ADMIN_TOKEN (every scope), or an API
 * token created through `POST /v1/tokens`. Missing, unknown or revoked: 401. Lacking a scope:
 * 403. Over the rate limit (per token, or per client address for requests without a valid
 * token): 429 with Retry-After.
 */
export class AuthGuard implements CanActivate {
  private readonly logger = new Logger('auth');
  /** When this process last wrote each token's lastUsedAt. */
  private readonly lastTouched = new Map<string, number>();

  constructor(
    private readonly reflector: Reflector,
    private readonly adminToken: string,
    private readonly tokens: TokenRepository,
    private readonly rateLimiter: RateLimiter,
  ) {}

  async canActivate(context: ExecutionContext): Promise<boolean> {
    const targets = [context.getHandler(), context.getClass()];
    if (this.reflector.getAllAndOverride<boolean>(PUBLIC, targets)) return true;
    const required = this.reflector.getAllAndOverride<Scope[] | undefined>(SCOPES, targets);
    const http = context.switchToHttp();
    const request = http.getRequest<Request>();

    const bearer = /^Bearer\s+(\S+)$/i.exec(request.headers.authorization ?? '')?.[1];
    const caller = bearer === undefined ? undefined : await this.identify(bearer);
    // Without a valid token the client's address is counted: guessing tokens is limited too.
    const subject = caller?.subject ?? `ip:${request.ip ?? request.socket.remoteAddress ?? 'unknown'}`;
    const decision = await this.rateLimiter.take(subject);
    if (!decision.allowed) {
      http.getResponse<Response>().setHeader('Retry-After', String(decision.retryAfterSeconds));
      throw new ApiError('too_many_requests', `rate limit exceeded: retry in ${decision.retryAfterSeconds} s`);
    }

    if (bearer === undefined) {
      throw new ApiError('unauthorized', 'missing bearer token (Authorization: Bearer <token>)');
    }
    if (!caller) throw new ApiError('unauthorized', 'unknown or revoked token');
    if (!required) {
      // Fail closed: a route nobody thought about is nobody's.
      this.logger.error(`${request.method} ${request.path} declares neither @Public() nor @Scopes(): denied`);
      throw new ApiError('forbidden', 'this route declares no scopes, so no token may call it');
    }
    const missing = missingScopes(caller.scopes, required);
    if (missing.length > 0) {
      throw new ApiError('forbidden', `this token lacks the scope ${missing.join(', ')}`);
    }
    (request as AuthenticatedRequest).caller = caller;
    return true;
  }

  private async identify(bearer: string): Promise<Caller | undefined> {
    if (sameSecret(bearer, this.adminToken)) return { subject: 'admin', scopes: [ADMIN_SCOPE] };
    if (!looksLikeTokenSecret(bearer)) return undefined;
    // Looked up by the secret's SHA-256, never compared as text: how long the lookup takes
    // tells nothing about any stored secret.
    const token = await this.tokens.findByHash(hashTokenSecret(bearer));
    if (!token || token.revokedAt) return undefined;
    this.recordUse(token.id);
    return { subject: `token:${token.id}`, scopes: token.scopes };
  }

  /** Writes lastUsedAt in the background, at most once per interval; the request never waits. */
  private recordUse(id: string): void {
    const now = Date.now();
    if (now - (this.lastTouched.get(id) ?? 0) < LAST_USED_INTERVAL_MS) return;
    this.lastTouched.set(id, now);
    this.tokens.touch(id, new Date(now), new Date(now - LAST_USED_INTERVAL_MS)).catch((error: unknown) => {
      this.lastTouched.delete(id);
      this.logger.warn(`could not record the use of token ${id}: ${(error as Error).message}`);
    });
  }
}
