import { createHash, randomBytes } from 'node:crypto';

/** Every API token secret starts with this, so a leaked one is easy to recognise (and scan for). */
export const TOKEN_SECRET_PREFIX = 'farm_';

/** Characters of the secret kept in clear to tell tokens apart: the prefix and 8 random ones. */
const SHOWN_LENGTH = TOKEN_SECRET_PREFIX.length + 8;

/** `farm_` and 32 random bytes in base64url (256 bits: guessing one is hopeless). */
export function newTokenSecret(): string {
  return `${TOKEN_SECRET_PREFIX}${randomBytes(32).toString('base64url')}`;
}

/** What is stored and looked up instead of the secret: its SHA-256, hex. */
export function hashTokenSecret(secret: string): string {
  return createHash('sha256').update(secret).digest('hex');
}

/** The part of a secret shown in token lists, e.g. `farm_Ab3dE6gH`. */
export function shownPrefix(secret: string): string {
  return secret.slice(0, SHOWN_LENGTH);
}

/** Whether a bearer value can be an API token at all (else no database lookup is made). */
export function looksLikeTokenSecret(value: string): boolean {
  return value.startsWith(TOKEN_SECRET_PREFIX) && value.length <= 100;
}
