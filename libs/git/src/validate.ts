import { posix } from 'node:path';
import { InvalidRefError, InvalidRepoPathError, InvalidRepoUrlError } from './errors';

const MAX_URL_LENGTH = 2048;
const MAX_REF_LENGTH = 255;
const MAX_PATH_LENGTH = 4096;

// Whitespace (Unicode too), C0/C1 control characters and DEL: none belongs in a URL, a ref or a
// path that git or a shell-free argv will see, and all of them make logs lie.
const WHITESPACE_OR_CONTROL = /[\s\u0000-\u001f\u007f-\u009f]/u;
const SCHEME_URL = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//;
// `<transport>::<address>` makes git run a remote helper, e.g. `ext::sh -c ...` runs a command.
const REMOTE_HELPER = /^[A-Za-z][A-Za-z0-9+.-]*::/;
// git treats `[user@]host:path` as SSH when no '/' comes before the first ':'.
const SCP_LIKE = /^(?:([^@/:]+)@)?([A-Za-z0-9._-]+|\[[0-9A-Fa-f:.]+\]):(.+)$/;
const NETWORK_SCHEMES = new Set(['https', 'ssh']);
/** Unauthenticated or local: only where the operator allows them (tests, local farms). */
const LOCAL_SCHEMES = new Set(['file', 'git']);

/**
 * Checks that `url` is a repository URL the farm may hand to git, and returns it unchanged.
 *
 * Accepted: `https://host/path`, `ssh://[user@]host[:port]/path`, scp-like `[user@]host:path`,
 * and `file:///absolute/path` and `git://host/path` (no authentication, no encryption) only when
 * `opts.allowFile` is set (tests, local farms). Plain local paths are never accepted: they would let a build read any repository on the
 * agent's disk.
 *
 * Rejected: remote-helper transports (`ext::`, `fd::`, ...), any other scheme (`http://` included),
 * anything starting with `-` or with a host or user starting with `-` (option injection into git or
 * ssh), whitespace and control characters (also percent-encoded ones in the path), and credentials
 * in the URL: a password anywhere, and any user name in `https://`/`git://` URLs. The URL is
 * stored with the build and shown in logs, so secrets must reach git another way (registry-style
 * auth configuration on the agent, SSH keys). A user name is fine for SSH (`git@host:...`).
 *
 * @throws InvalidRepoUrlError with a message saying what is wrong.
 */
export function validateRepoUrl(url: string, opts: { allowFile: boolean }): string {
  const fail = (why: string): never => {
    throw new InvalidRepoUrlError(`invalid repository URL: ${why}`);
  };
  if (typeof url !== 'string' || url.length === 0) fail('it is empty');
  if (url.length > MAX_URL_LENGTH) fail(`it is longer than ${MAX_URL_LENGTH} characters`);
  if (WHITESPACE_OR_CONTROL.test(url)) fail('it contains whitespace or control characters');
  if (url.startsWith('-')) fail("it starts with '-'");
  if (REMOTE_HELPER.test(url)) fail("git remote-helper transports ('<transport>::<address>') are not allowed");

  const scheme = SCHEME_URL.exec(url)?.[1]?.toLowerCase();
  if (scheme !== undefined) {
    if (LOCAL_SCHEMES.has(scheme)) {
      if (!opts.allowFile) fail(`${scheme}:// URLs are not allowed here; use https://, ssh:// or user@host:path`);
    } else if (!NETWORK_SCHEMES.has(scheme)) {
      fail(`the ${scheme}:// scheme is not supported; use https://, ssh:// or user@host:path`);
    }
    checkSchemeUrl(url, scheme, fail);
    return url;
  }

  const scp = SCP_LIKE.exec(url);
  if (scp) {
    const [, user, host, path] = scp as unknown as [string, string | undefined, string, string];
    if (user !== undefined && (user.startsWith('-') || user.includes(':'))) fail('the user name is not valid');
    if (host.startsWith('-')) fail("the host starts with '-'");
    if (path.startsWith('-')) fail("the path starts with '-'");
    return url;
  }

  return fail('expected https://, ssh:// or user@host:path (local paths are not allowed)');
}

function checkSchemeUrl(url: string, scheme: string, fail: (why: string) => never): void {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return fail('it cannot be parsed as a URL');
  }
  if (parsed.password !== '') fail('credentials must not be part of the URL');
  if (parsed.username !== '' && scheme !== 'ssh') fail('credentials must not be part of the URL');
  if (parsed.username.startsWith('-')) fail("the user name starts with '-'");

  if (scheme === 'file') {
    if (parsed.hostname !== '' && parsed.hostname !== 'localhost') fail('file:// URLs must not name a host');
  } else {
    if (parsed.hostname === '') fail('the host is missing');
    if (parsed.hostname.startsWith('-')) fail("the host starts with '-'");
  }

  if (parsed.pathname === '' || parsed.pathname === '/') fail('the repository path is missing');
  let path: string;
  try {
    path = decodeURIComponent(parsed.pathname);
  } catch {
    return fail('the path has invalid percent-encoding');
  }
  if (WHITESPACE_OR_CONTROL.test(path.replace(/ /g, ''))) fail('the path contains control characters');
}

/**
 * Checks a ref as a user gives it — a branch (`main`), a tag (`v1.2`), a full ref
 * (`refs/heads/main`) or `HEAD` — with the rules of `git check-ref-format --allow-onelevel`, plus no
 * leading '-'. Returns it unchanged.
 *
 * @throws InvalidRefError with a message saying what is wrong.
 */
export function validateRefName(ref: string): string {
  const fail = (why: string): never => {
    throw new InvalidRefError(`invalid ref ${JSON.stringify(ref)}: ${why}`);
  };
  if (typeof ref !== 'string' || ref.length === 0) fail('it is empty');
  if (ref.length > MAX_REF_LENGTH) fail(`it is longer than ${MAX_REF_LENGTH} characters`);
  if (WHITESPACE_OR_CONTROL.test(ref)) fail('it contains whitespace or control characters');
  if (ref.startsWith('-')) fail("it starts with '-'");
  if (/[~^:?*[\\]/.test(ref)) fail('it contains one of ~ ^ : ? * [ \\');
  if (ref.includes('..')) fail("it contains '..'");
  if (ref.includes('@{') || ref === '@') fail("it contains '@{' or is '@'");
  if (ref.startsWith('/') || ref.endsWith('/') || ref.includes('//')) fail("it has an empty '/' component");
  if (ref.endsWith('.')) fail("it ends with '.'");
  for (const part of ref.split('/')) {
    if (part.startsWith('.')) fail("a component starts with '.'");
    if (part.endsWith('.lock')) fail("a component ends with '.lock'");
  }
  return ref;
}

/** True for a full commit id in git's canonical form: 40 (SHA-1) or 64 (SHA-256) lowercase hex digits. */
export function isCommitSha(value: string): boolean {
  return typeof value === 'string' && /^(?:[0-9a-f]{40}|[0-9a-f]{64})$/.test(value);
}

/**
 * Checks a repository-relative path (the Dockerfile, the build context): relative, no NUL or
 * control characters, not escaping the repository with `..`. Returns it normalized (`./a//b/` →
 * `a/b`, `./` → `.`).
 *
 * This is a check of the text only; use {@link resolveInCheckout} on a checkout to also refuse
 * symlinks that point outside it.
 *
 * @param field the request field it came from, carried by the error.
 * @throws InvalidRepoPathError with `field` and a message saying what is wrong.
 */
export function validateRepoPath(path: string, field: string): string {
  const fail = (why: string): never => {
    throw new InvalidRepoPathError(field, `${field}: ${why}`);
  };
  if (typeof path !== 'string' || path.length === 0) fail('the path is empty');
  if (path.length > MAX_PATH_LENGTH) fail(`the path is longer than ${MAX_PATH_LENGTH} characters`);
  if (/[\u0000-\u001f\u007f-\u009f]/.test(path)) fail('the path contains NUL or control characters');
  if (path.startsWith('/')) fail('the path must be relative to the repository root');
  let normalized = posix.normalize(path);
  if (normalized.length > 1 && normalized.endsWith('/')) normalized = normalized.slice(0, -1);
  if (normalized === '..' || normalized.startsWith('../')) fail('the path leads outside the repository');
  return normalized;
}
