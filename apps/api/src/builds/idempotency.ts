import { createHash } from 'node:crypto';
import { ApiError } from '../common/api-error';
import type { ValidBuildRequest } from './build-request';

/**
 * `Idempotency-Key` on `POST /v1/builds`: a client that retries a request (a timeout, a dropped
 * connection) with the same key gets the build the first request created instead of a second
 * one. Keys are per caller (API token, or the admin token): two clients that happen to pick
 * the same key do not get each other's builds, nor learn of them through a 409.
 */

/** A header value the farm accepts as a key: 1 to 255 printable ASCII characters. */
const KEY = /^[\x20-\x7e]{1,255}$/;

export interface Idempotency {
  key: string;
  /** Hash of the validated request: tells a retry (same request) from a conflict (another one). */
  requestHash: string;
}

/** The key as stored: the caller's (`admin`, `token:<id>`), then a newline, then the key sent. */
export function callerKey(caller: string, key: string): string {
  // A key sent is printable ASCII only, so the newline cannot be forged by a caller.
  return `${caller}\n${key}`;
}

/** The header's value checked: undefined when absent, a 400 for an unusable key. */
export function validateIdempotencyKey(value: string | string[] | undefined): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || !KEY.test(value) || value.trim() !== value || value === '') {
    throw new ApiError(
      'invalid_request',
      'Idempotency-Key must be 1 to 255 printable ASCII characters without leading or trailing spaces',
      'Idempotency-Key',
    );
  }
  return value;
}

/**
 * SHA-256 of the request in canonical form (validated, defaults filled in, object keys sorted),
 * so the same request spelled differently (key order, an explicit default) is the same request.
 * Build secrets count by their ids only: the hash is stored, and must not let anyone holding
 * the database test guesses of a secret's value.
 */
export function requestHash(request: ValidBuildRequest): string {
  const secrets = Object.keys(request.secrets ?? {}).sort();
  return createHash('sha256')
    .update(canonicalJson({ ...request, secrets }))
    .digest('hex');
}

export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map((item) => canonicalJson(item ?? null)).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, item]) => item !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([key, item]) => `${JSON.stringify(key)}:${canonicalJson(item)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

/** The key's build answers the retry, unless it was created from another request. */
export function checkSameRequest<T extends { id: string; idempotencyHash: string | null }>(
  build: T,
  idempotency: Idempotency,
): T {
  if (build.idempotencyHash !== idempotency.requestHash) {
    throw new ApiError(
      'conflict',
      `this Idempotency-Key was already used for build ${build.id} with a different request`,
      'Idempotency-Key',
    );
  }
  return build;
}
