import type { ApiToken } from '@farm/db';
import type { ApiTokenView } from '@farm/contract';

export type { ApiTokenView, CreatedApiTokenView } from '@farm/contract';

/** A token as listed: never its secret, never the secret's hash. */
export function toApiTokenView(token: ApiToken): ApiTokenView {
  return {
    id: token.id,
    name: token.name,
    scopes: token.scopes,
    prefix: token.prefix,
    createdAt: token.createdAt.toISOString(),
    lastUsedAt: token.lastUsedAt?.toISOString() ?? null,
    revokedAt: token.revokedAt?.toISOString() ?? null,
  };
}
