/** One challenge of a `WWW-Authenticate` header. */
export interface AuthChallenge {
  /** Lower-case scheme, e.g. `bearer` or `basic`. */
  scheme: string;
  /** Parameters by lower-case name, values unquoted. */
  params: Record<string, string>;
}

const TOKEN_CHAR = /[!#$%&'*+.^_`|~0-9A-Za-z-]/;

/**
 * Parses a `WWW-Authenticate` header (RFC 7235): one or more comma-separated challenges, each a
 * scheme followed by `name=value` parameters whose values may be quoted strings containing
 * commas, as in `Bearer realm="https://auth/token",scope="repository:a:pull,push"`.
 */
export function parseWwwAuthenticate(header: string): AuthChallenge[] {
  const challenges: AuthChallenge[] = [];
  let pos = 0;

  const skip = (chars: RegExp): void => {
    while (pos < header.length && chars.test(header[pos])) pos++;
  };
  const token = (): string => {
    const start = pos;
    while (pos < header.length && TOKEN_CHAR.test(header[pos])) pos++;
    return header.slice(start, pos);
  };
  const quoted = (): string => {
    pos++; // opening quote
    let value = '';
    while (pos < header.length && header[pos] !== '"') {
      if (header[pos] === '\\' && pos + 1 < header.length) pos++;
      value += header[pos++];
    }
    pos++; // closing quote
    return value;
  };
  // Looks ahead for `name =`; leaves pos after `=` when found, untouched otherwise.
  const paramName = (): string | undefined => {
    const start = pos;
    const name = token();
    skip(/[ \t]/);
    if (name && header[pos] === '=') {
      pos++;
      skip(/[ \t]/);
      return name;
    }
    pos = start;
    return undefined;
  };

  while (pos < header.length) {
    skip(/[ \t,]/);
    const scheme = token();
    if (!scheme) {
      pos++; // stray character: ignore it rather than fail on a sloppy header
      continue;
    }
    const challenge: AuthChallenge = { scheme: scheme.toLowerCase(), params: {} };
    challenges.push(challenge);
    skip(/[ \t]/);
    for (;;) {
      const name = paramName();
      if (name === undefined) break;
      challenge.params[name.toLowerCase()] = header[pos] === '"' ? quoted() : token();
      skip(/[ \t]/);
      if (header[pos] !== ',') break;
      pos++;
      skip(/[ \t,]/);
    }
  }
  return challenges;
}
