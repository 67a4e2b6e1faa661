import { posix } from 'node:path';

/**
 * `.dockerignore` with Docker's semantics (moby/patternmatcher and buildkit's dockerignore
 * reader): patterns are cleaned paths relative to the context root, `*` and `?` stay within
 * one path component, `**` spans any number of components (also none), `!` re-includes, and
 * the last pattern that matches a path or one of its parent directories decides.
 */

interface Pattern {
  /** The cleaned pattern, without `!`. */
  text: string;
  exclusion: boolean;
  regexp: RegExp;
  /** One glob per path component, to tell whether the pattern may match below a directory. */
  components: string[];
}

export class DockerignoreError extends Error {}

/** The lines of a `.dockerignore` file, cleaned as Docker cleans them; comments and blanks dropped. */
export function parseDockerignore(text: string): string[] {
  const patterns: string[] = [];
  for (const [index, raw] of text
    .replace(/^\uFEFF/, '')
    .split(/\r?\n/)
    .entries()) {
    // As Docker: a comment is a line starting with "#" before any trimming.
    if (raw.startsWith('#')) continue;
    let pattern = raw.trim();
    if (pattern === '') continue;
    const invert = pattern.startsWith('!');
    if (invert) pattern = pattern.slice(1).trim();
    if (pattern !== '') {
      pattern = posix.normalize(pattern).replace(/\/+$/, '') || '/';
      if (pattern.length > 1 && pattern.startsWith('/')) pattern = pattern.slice(1);
    }
    if (pattern.startsWith('../') || pattern === '..') {
      throw new DockerignoreError(`.dockerignore line ${index + 1}: "${raw.trim()}" points outside the context`);
    }
    patterns.push(invert ? `!${pattern}` : pattern);
  }
  return patterns;
}

/** Decides which context paths `.dockerignore` patterns exclude. */
export class DockerignoreMatcher {
  private readonly patterns: Pattern[];

  constructor(patterns: string[]) {
    this.patterns = patterns.map((line) => {
      const exclusion = line.startsWith('!');
      const text = exclusion ? line.slice(1) : line;
      if (text === '') throw new DockerignoreError(`illegal exclusion pattern: "!"`);
      return { text, exclusion, regexp: globToRegExp(text), components: text.split('/') };
    });
  }

  /** True when some `!` pattern exists: excluded directories may then hold included files. */
  get hasExceptions(): boolean {
    return this.patterns.some((p) => p.exclusion);
  }

  /**
   * Whether `path` (relative to the context, "/"-separated, no leading "./") is excluded: the
   * last pattern matching it or one of its parent directories wins (patternmatcher's
   * MatchesOrParentMatches).
   */
  excludes(path: string): boolean {
    const parents = path.split('/').slice(0, -1);
    let matched = false;
    for (const pattern of this.patterns) {
      // An exclusion only matters once something matched; an inclusion only until one did.
      if (pattern.exclusion !== matched) continue;
      let match = pattern.regexp.test(path);
      for (let i = 1; !match && i <= parents.length; i++) match = pattern.regexp.test(parents.slice(0, i).join('/'));
      if (match) matched = !pattern.exclusion;
    }
    return matched;
  }

  /**
   * Whether an excluded directory may still hold paths a `!` pattern re-includes, so the walk
   * must descend into it. Conservative: true whenever it cannot tell.
   */
  mayIncludeBelow(dir: string): boolean {
    const parts = dir.split('/');
    return this.patterns.some((pattern) => {
      if (!pattern.exclusion) return false;
      for (let i = 0; i < parts.length; i++) {
        const component = pattern.components[i];
        if (component === undefined) return true; // the pattern matches a parent: all of it is back
        if (component.includes('**')) return true;
        if (!globToRegExp(component).test(parts[i])) return false;
      }
      return true;
    });
  }
}

/** patternmatcher's glob -> regular expression translation, for "/"-separated paths. */
export function globToRegExp(pattern: string): RegExp {
  let source = '^';
  for (let i = 0; i < pattern.length; i++) {
    const ch = pattern[i];
    if (ch === '*') {
      if (pattern[i + 1] === '*') {
        i++;
        // "**/" is "**": it may also stand for no directory at all.
        if (pattern[i + 1] === '/') i++;
        source += i + 1 >= pattern.length ? '.*' : '(?:.*/)?';
      } else {
        source += '[^/]*';
      }
    } else if (ch === '?') {
      source += '[^/]';
    } else if (ch === '\\') {
      // Escapes the next character; a trailing backslash stands for itself.
      const next = pattern[i + 1];
      source += next === undefined ? '\\\\' : escapeRegExp(next);
      if (next !== undefined) i++;
    } else if (ch === '[') {
      const end = pattern.indexOf(']', i + 1);
      if (end < 0) throw new DockerignoreError(`syntax error in pattern "${pattern}": unclosed "["`);
      // filepath.Match classes: [abc], [a-z], [^a-z] (also written [!a-z]); never "/".
      let body = pattern.slice(i + 1, end);
      const negated = body.startsWith('^') || body.startsWith('!');
      if (negated) body = body.slice(1);
      if (body === '') throw new DockerignoreError(`syntax error in pattern "${pattern}": empty "[]"`);
      source += `[${negated ? '^/' : ''}${body.replace(/[\\\]^]/g, '\\$&')}]`;
      i = end;
    } else {
      source += escapeRegExp(ch);
    }
  }
  return new RegExp(`${source}$`, 's');
}

function escapeRegExp(ch: string): string {
  return /[.*+?^${}()|[\]\\/-]/.test(ch) ? `\\${ch}` : ch;
}
