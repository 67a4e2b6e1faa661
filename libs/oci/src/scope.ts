/** Access asked of a token server: resource (`repository:team/app`) -> actions (`pull`, `push`). */
export type Access = Map<string, Set<string>>;

/**
 * Parses token scopes (`repository:team/app:pull,push`). A string may hold several scopes
 * separated by spaces, as distribution's `scope` challenge parameter does.
 */
export function parseScopes(scopes: Iterable<string>): Access {
  const access: Access = new Map();
  for (const item of scopes) {
    for (const scope of item.split(' ')) {
      const colon = scope.lastIndexOf(':');
      if (colon <= 0) continue;
      const resource = scope.slice(0, colon);
      const actions = access.get(resource) ?? new Set<string>();
      for (const action of scope.slice(colon + 1).split(',')) if (action) actions.add(action);
      access.set(resource, actions);
    }
  }
  return access;
}

/** Scopes in a stable order, one per resource. */
export function formatScopes(access: Access): string[] {
  return [...access.entries()].map(([resource, actions]) => `${resource}:${[...actions].sort().join(',')}`).sort();
}

/** True when `have` grants every action of `want`. */
export function coversAccess(have: Access, want: Access): boolean {
  for (const [resource, actions] of want) {
    const granted = have.get(resource);
    if (!granted) return false;
    for (const action of actions) if (!granted.has(action) && !granted.has('*')) return false;
  }
  return true;
}

/** The union of two access sets. */
export function mergeAccess(a: Access, b: Access): Access {
  return parseScopes([...formatScopes(a), ...formatScopes(b)]);
}

/** The scope for reading `repository`. */
export function pullScope(repository: string): string {
  return `repository:${repository}:pull`;
}

/** The scope for writing `repository`. */
export function pushScope(repository: string): string {
  return `repository:${repository}:pull,push`;
}
