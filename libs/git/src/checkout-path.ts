import { realpath } from 'node:fs/promises';
import { join, relative, isAbsolute } from 'node:path';
import { InvalidRepoPathError } from './errors';
import { validateRepoPath } from './validate';

/**
 * Resolves a repository-relative path inside a checkout to an absolute path, following symlinks,
 * and refuses it when it does not exist or when a symlink leads outside the checkout (a repository
 * must not make the agent read, say, `/etc/shadow` as its Dockerfile).
 *
 * @param field the request field it came from, carried by the error.
 * @throws InvalidRepoPathError
 */
export async function resolveInCheckout(checkoutDir: string, path: string, field: string): Promise<string> {
  const normalized = validateRepoPath(path, field);
  const root = await realpath(checkoutDir);
  let resolved: string;
  try {
    resolved = await realpath(join(root, normalized));
  } catch {
    throw new InvalidRepoPathError(field, `${field}: ${normalized} does not exist in the repository`);
  }
  const rel = relative(root, resolved);
  if (rel === '..' || rel.startsWith('../') || isAbsolute(rel)) {
    throw new InvalidRepoPathError(field, `${field}: ${normalized} leads outside the repository`);
  }
  return resolved;
}
