import { coversAccess, formatScopes, mergeAccess, parseScopes } from './scope';

describe('token scopes', () => {
  it('parses repeated and space-separated scopes, merging actions per resource', () => {
    const access = parseScopes(['repository:team/app:push,pull repository:base:pull', 'repository:team/app:pull']);
    expect(formatScopes(access)).toEqual(['repository:base:pull', 'repository:team/app:pull,push']);
  });

  it('knows when a token granted for some scopes covers others', () => {
    const have = parseScopes(['repository:a:pull,push', 'repository:b:pull']);
    expect(coversAccess(have, parseScopes(['repository:a:pull']))).toBe(true);
    expect(coversAccess(have, parseScopes(['repository:a:push', 'repository:b:pull']))).toBe(true);
    expect(coversAccess(have, parseScopes(['repository:b:push']))).toBe(false);
    expect(coversAccess(have, parseScopes(['repository:c:pull']))).toBe(false);
    expect(coversAccess(have, parseScopes([]))).toBe(true);
    expect(coversAccess(parseScopes(['registry:catalog:*']), parseScopes(['registry:catalog:search']))).toBe(true);
  });

  it('merges access sets', () => {
    const merged = mergeAccess(
      parseScopes(['repository:a:pull']),
      parseScopes(['repository:a:push repository:b:pull']),
    );
    expect(formatScopes(merged)).toEqual(['repository:a:pull,push', 'repository:b:pull']);
  });
});
