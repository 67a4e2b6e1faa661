import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { type Forge, headerValue, type WebhookHeaders } from './forge';

const HEX_SHA256 = /^[0-9a-f]{64}$/i;
const GITHUB_SIGNATURE = /^sha256=([0-9a-f]{64})$/i;
// Delivery ids and event names end up in the database and in logs: printable ASCII only, bounded.
const DELIVERY_ID = /^[\x21-\x7e]{1,255}$/;
const EVENT_NAME = /^[\x21-\x7e](?:[\x20-\x7e]{0,253}[\x21-\x7e])?$/;

// Tokens are compared through an HMAC under a key nobody else knows, so the comparison always
// runs on two 32-byte digests: neither the token's length nor its content shows in the timing.
const TOKEN_KEY = randomBytes(32);

/**
 * Checks that a webhook delivery comes from the forge holding `secret`, from the raw body bytes
 * exactly as received (not re-serialized JSON) and the request headers:
 * - GitHub: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256(secret, rawBody)>`;
 * - GitLab: `X-Gitlab-Token: <secret>`;
 * - Gitea / Forgejo: `X-Gitea-Signature` and/or `X-Forgejo-Signature: <hex HMAC-SHA256(secret, rawBody)>`;
 *   every one of them that is present must match (Forgejo sends both).
 *
 * Digests and tokens are compared in constant time. Returns false for a missing, repeated or
 * malformed header, an empty secret (a project without a secret must not accept everyone), and an
 * unknown forge.
 */
export function verifyWebhookSignature(
  forge: Forge,
  secret: string,
  rawBody: Buffer,
  headers: WebhookHeaders,
): boolean {
  if (typeof secret !== 'string' || secret === '' || !Buffer.isBuffer(rawBody)) return false;
  switch (forge) {
    case 'github': {
      const hex = GITHUB_SIGNATURE.exec(headerValue(headers, 'x-hub-signature-256') ?? '')?.[1];
      return hex !== undefined && hmacMatches(secret, rawBody, hex);
    }
    case 'gitlab': {
      const token = headerValue(headers, 'x-gitlab-token');
      return token !== undefined && tokensEqual(token, secret);
    }
    case 'gitea': {
      const signatures = ['x-gitea-signature', 'x-forgejo-signature']
        .map((name) => headerValue(headers, name))
        .filter((value) => value !== undefined);
      return (
        signatures.length > 0 && signatures.every((hex) => HEX_SHA256.test(hex) && hmacMatches(secret, rawBody, hex))
      );
    }
    default:
      return false;
  }
}

/** A delivery's id (the key that makes replays idempotent) and event name, when the headers carry them. */
export interface DeliveryInfo {
  deliveryId?: string;
  event?: string;
}

/**
 * Reads the delivery id and event name from the headers:
 * - GitHub: `X-GitHub-Delivery`, `X-GitHub-Event`;
 * - GitLab: `Idempotency-Key` (GitLab 17.4+, kept across retries and manual resends), else
 *   `X-Gitlab-Event-UUID`; `X-Gitlab-Event`;
 * - Gitea / Forgejo: `X-Gitea-Delivery` (else `X-Forgejo-Delivery`), `X-Gitea-Event` (else `X-Forgejo-Event`).
 *
 * A value that is repeated, longer than 255 characters or not printable ASCII (no spaces in a
 * delivery id) counts as missing; the next header in the list is tried, else the field is left out.
 */
export function deliveryInfo(forge: Forge, headers: WebhookHeaders): DeliveryInfo {
  const names: Record<Forge, { id: string[]; event: string[] }> = {
    github: { id: ['x-github-delivery'], event: ['x-github-event'] },
    gitlab: { id: ['idempotency-key', 'x-gitlab-event-uuid'], event: ['x-gitlab-event'] },
    gitea: { id: ['x-gitea-delivery', 'x-forgejo-delivery'], event: ['x-gitea-event', 'x-forgejo-event'] },
  };
  const forForge = Object.hasOwn(names, forge) ? names[forge] : undefined;
  if (forForge === undefined) return {};
  const deliveryId = firstMatching(headers, forForge.id, DELIVERY_ID);
  const event = firstMatching(headers, forForge.event, EVENT_NAME);
  return { ...(deliveryId !== undefined && { deliveryId }), ...(event !== undefined && { event }) };
}

function firstMatching(headers: WebhookHeaders, names: string[], pattern: RegExp): string | undefined {
  for (const name of names) {
    const value = headerValue(headers, name);
    if (value !== undefined && pattern.test(value)) return value;
  }
  return undefined;
}

/** `hex` is 64 hex digits, so both sides are 32 bytes. */
function hmacMatches(secret: string, rawBody: Buffer, hex: string): boolean {
  const expected = createHmac('sha256', secret).update(rawBody).digest();
  return timingSafeEqual(expected, Buffer.from(hex, 'hex'));
}

function tokensEqual(given: string, secret: string): boolean {
  const digest = (value: string) => createHmac('sha256', TOKEN_KEY).update(value, 'utf8').digest();
  return timingSafeEqual(digest(given), digest(secret));
}
