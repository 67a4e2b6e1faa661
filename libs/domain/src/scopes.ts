/**
 * What an API token may do. A route declares the scopes it needs (`@Scopes` in the api); a
 * token passes when it holds every one of them, and `admin` stands for all of them. Scopes do
 * not imply one another otherwise: a CI token that submits builds and follows them holds both
 * `builds:write` and `builds:read`.
 */
export const SCOPES = ['builds:read', 'builds:write', 'projects:admin', 'agents:admin', 'admin'] as const;

export type Scope = (typeof SCOPES)[number];

/** The scope that grants every other one (the bootstrap FARM_ADMIN_TOKEN holds it). */
export const ADMIN_SCOPE: Scope = 'admin';

export function isScope(value: string): value is Scope {
  return (SCOPES as readonly string[]).includes(value);
}

/** The required scopes that `held` does not grant (empty: the token may go ahead). */
export function missingScopes(held: readonly string[], required: readonly Scope[]): Scope[] {
  if (held.includes(ADMIN_SCOPE)) return [];
  return required.filter((scope) => !held.includes(scope));
}
