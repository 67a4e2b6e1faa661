import { digestProblem } from './digest';
import { quote } from './quote';

/** An image reference, normalized: Docker Hub names carry `docker.io` and `library/`. */
export interface ImageReference {
  /** `host[:port]`, e.g. "docker.io", "127.0.0.1:5000", "[::1]:5000". */
  registry: string;
  /** Path inside the registry, e.g. "library/app", "team/app". */
  repository: string;
  tag?: string;
  digest?: string;
}

/** A string that is not an image reference, with a message naming what is wrong. */
export class InvalidReferenceError extends Error {
  override name = 'InvalidReferenceError';
}

// docker/distribution's reference grammar (reference/regexp.go).
const DOMAIN_COMPONENT = '(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])';
const DOMAIN = new RegExp(`^(?:${DOMAIN_COMPONENT}(?:\\.${DOMAIN_COMPONENT})*|\\[[a-fA-F0-9:]+\\])(?::[0-9]+)?$`);
const PATH_COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG = /^\w[\w.-]{0,127}$/;
// A bare image ID; docker refuses it as a name so that IDs and names never get confused.
const IDENTIFIER = /^[a-f0-9]{64}$/;
const NAME_TOTAL_LENGTH_MAX = 255;

const DOCKER_HUB = 'docker.io';
const LEGACY_DOCKER_HUB = 'index.docker.io';

/**
 * Parse `[registry[:port]/]path/name[:tag][@digest]` as docker does (`ParseNormalizedNamed`):
 * - the first path component is a registry iff it contains '.' or ':', is "localhost", or has
 *   uppercase letters; otherwise the registry is Docker Hub ("app" -> docker.io/library/app,
 *   "user/app" -> docker.io/user/app; index.docker.io is docker.io);
 * - path components are lowercase alphanumerics joined by '.', '_', '__' or dashes;
 * - a tag is `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`; a digest is algorithm:hex (sha256: 64 hex);
 * - registry/repository is at most 255 characters.
 *
 * @throws InvalidReferenceError with a message naming the bad part.
 */
export function parseImageReference(input: string): ImageReference {
  if (typeof input !== 'string' || input === '') throw new InvalidReferenceError('image reference is empty');
  const fail = (reason: string) => new InvalidReferenceError(`invalid image reference ${quote(input)}: ${reason}`);

  if (IDENTIFIER.test(input)) {
    throw fail('a 64-hex-digit string is an image ID, not a repository name');
  }

  let rest = input;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    const problem = digestProblem(digest);
    if (problem) throw fail(problem);
  }

  // The tag separator is a ':' after the last '/': the one in "host:port/" belongs to the registry.
  let tag: string | undefined;
  const colon = rest.indexOf(':', rest.lastIndexOf('/') + 1);
  if (colon >= 0) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (tag === '') throw fail("tag is empty (nothing after ':')");
    if (!TAG.test(tag)) {
      throw fail(
        `tag ${quote(tag)} is invalid: 1 to 128 of letters, digits, '_', '.' and '-', not starting with '.' or '-'`,
      );
    }
  }

  if (rest === '') throw fail('repository name is empty');
  const { registry, repository } = splitRegistry(rest);
  if (!DOMAIN.test(registry)) {
    throw fail(`registry ${quote(registry)} is not a valid host[:port]`);
  }
  if (repository.toLowerCase() !== repository) {
    throw fail(`repository name ${quote(repository)} must be lowercase`);
  }
  for (const component of repository.split('/')) {
    if (component === '') throw fail("repository name has an empty component (a doubled, leading or trailing '/')");
    if (!PATH_COMPONENT.test(component)) {
      throw fail(
        `repository name component ${quote(component)} is invalid: lowercase letters and digits, ` +
          "separated by single '.', '_', '__' or dashes",
      );
    }
  }
  const nameLength = registry.length + 1 + repository.length;
  if (nameLength > NAME_TOTAL_LENGTH_MAX) {
    throw fail(`name is ${nameLength} characters long; at most ${NAME_TOTAL_LENGTH_MAX} allowed`);
  }

  const ref: ImageReference = { registry, repository };
  if (tag !== undefined) ref.tag = tag;
  if (digest !== undefined) ref.digest = digest;
  return ref;
}

/**
 * A reference to publish an image under: it must not carry a digest (a digest names content, it
 * cannot be pushed to), and without a tag it means "latest", as `docker push` does.
 *
 * @throws InvalidReferenceError
 */
export function parseTagReference(input: string): ImageReference & { tag: string } {
  const ref = parseImageReference(input);
  if (ref.digest !== undefined) {
    throw new InvalidReferenceError(
      `invalid tag reference ${quote(input)}: an image is published under a tag, not a digest`,
    );
  }
  return { registry: ref.registry, repository: ref.repository, tag: ref.tag ?? 'latest' };
}

/** Canonical form `registry/repository[:tag][@digest]`, e.g. "127.0.0.1:5000/team/app:1.0". */
export function formatImageReference(r: ImageReference): string {
  let s = `${r.registry}/${r.repository}`;
  if (r.tag) s += `:${r.tag}`;
  if (r.digest) s += `@${r.digest}`;
  return s;
}

/** Whether `tag` matches the tag grammar `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`. */
export function isValidTag(tag: string): boolean {
  return typeof tag === 'string' && TAG.test(tag);
}

// docker/distribution's splitDockerDomain.
function splitRegistry(name: string): { registry: string; repository: string } {
  const slash = name.indexOf('/');
  const first = slash >= 0 ? name.slice(0, slash) : '';
  const isRegistry = slash >= 0 && (/[.:]/.test(first) || first === 'localhost' || first.toLowerCase() !== first);
  let registry = isRegistry ? first : DOCKER_HUB;
  let repository = isRegistry ? name.slice(slash + 1) : name;
  if (registry === LEGACY_DOCKER_HUB) registry = DOCKER_HUB;
  if (registry === DOCKER_HUB && !repository.includes('/')) repository = `library/${repository}`;
  return { registry, repository };
}
