import { quote } from './quote';

/** A branch or tag filter pattern that is empty or uses characters no ref name can hold. */
export class RefFilterError extends Error {
  override name = 'RefFilterError';
}

const MAX_PATTERN_LENGTH = 255;
// What git refuses in ref names (git check-ref-format) and cannot match anything; '[' and ']'
// would also read as character classes, which these globs do not have.
const FORBIDDEN = /[\s\u0000-\u001f\u007f-\u009f~^:[\]\\]/u;
const REGEXP_SYNTAX = /[\\^$.*+?()[\]{}|/]/g;

/**
 * True when a branch or tag name (`main`, `release/1.2`, `v1.2.3`; no `refs/heads/`) passes the
 * filter. An empty or absent list lets every name through.
 *
 * Globs: `*` matches within one path segment (never '/'), `**` matches across segments, `?`
 * matches one character other than '/', anything else matches itself, case-sensitively. A `**`
 * segment followed by '/' also matches no segment at all, so `**` + `/x` matches `x` and `a/b/x`.
 * A pattern `!glob` excludes what the glob matches; exclusions win over inclusions, and a list of
 * only exclusions means "everything except".
 *
 * Examples: `release/**` matches `release/1` and `release/1/hotfix` but not `release`;
 * `[ "**", "!wip/*" ]` lets everything through except `wip/x`.
 */
export function matchesRefFilter(name: string, patterns: string[] | undefined): boolean {
  if (patterns === undefined || patterns.length === 0) return true;
  let included = false;
  let hasInclusions = false;
  for (const pattern of patterns) {
    if (pattern.startsWith('!')) {
      if (globToRegExp(pattern.slice(1)).test(name)) return false;
    } else {
      hasInclusions = true;
      included ||= globToRegExp(pattern).test(name);
    }
  }
  return included || !hasInclusions;
}

/**
 * Checks branch / tag filter patterns when a project is created or changed: each is a non-empty
 * string of at most 255 characters, `!` is followed by a glob (and only one `!`), and no
 * whitespace, control characters or `~ ^ : [ ] \`, which no ref name holds. An empty list is fine.
 *
 * @throws RefFilterError naming the pattern and what is wrong.
 */
export function validateRefFilter(patterns: string[]): void {
  if (!Array.isArray(patterns)) throw new RefFilterError('ref filters must be a list of patterns');
  for (const pattern of patterns) {
    if (typeof pattern !== 'string' || pattern === '') throw new RefFilterError('a ref filter pattern is empty');
    const fail = (why: string) => new RefFilterError(`ref filter pattern ${quote(pattern)} ${why}`);
    if (pattern.length > MAX_PATTERN_LENGTH) throw fail(`is longer than ${MAX_PATTERN_LENGTH} characters`);
    const glob = pattern.startsWith('!') ? pattern.slice(1) : pattern;
    if (glob === '') throw fail("has nothing after '!'");
    if (glob.startsWith('!')) throw fail("starts with '!!': a pattern is negated by a single '!'");
    const forbidden = FORBIDDEN.exec(glob)?.[0];
    if (forbidden !== undefined) throw fail(`contains ${quote(forbidden)}, which no branch or tag name can hold`);
  }
}

function globToRegExp(glob: string): RegExp {
  let source = '';
  let i = 0;
  while (i < glob.length) {
    if (glob.startsWith('**', i)) {
      const segmentStart = i === 0 || glob[i - 1] === '/';
      i += 2;
      while (glob[i] === '*') i++;
      if (segmentStart && glob[i] === '/') {
        source += '(?:.*/)?';
        i++;
      } else {
        source += '.*';
      }
    } else if (glob[i] === '*') {
      source += '[^/]*';
      i++;
    } else if (glob[i] === '?') {
      source += '[^/]';
      i++;
    } else {
      const char = String.fromCodePoint(glob.codePointAt(i) ?? 0);
      source += char.replace(REGEXP_SYNTAX, '\\$&');
      i += char.length;
    }
  }
  // 'u': '?' is one character even outside the Basic Multilingual Plane.
  return new RegExp(`^${source}$`, 'u');
}
