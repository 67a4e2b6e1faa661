import { isScope, missingScopes, SCOPES } from './scopes';

describe('missingScopes', () => {
  test('admin grants every scope', () => {
    expect(missingScopes(['admin'], [...SCOPES])).toEqual([]);
  });

  test('a token passes only with every required scope', () => {
    expect(missingScopes(['builds:read'], ['builds:read'])).toEqual([]);
    expect(missingScopes(['builds:read'], ['builds:write'])).toEqual(['builds:write']);
    expect(missingScopes(['builds:write'], ['builds:read', 'builds:write'])).toEqual(['builds:read']);
  });

  test('no other scope implies another', () => {
    const others = SCOPES.filter((scope) => scope !== 'admin');
    for (const required of others) {
      expect(
        missingScopes(
          others.filter((scope) => scope !== required),
          [required],
        ),
      ).toEqual([required]);
    }
  });

  test('an empty requirement is met by any token', () => {
    expect(missingScopes([], [])).toEqual([]);
  });
});

describe('isScope', () => {
  test('knows exactly the documented scopes', () => {
    expect(SCOPES.every(isScope)).toBe(true);
    expect(isScope('builds')).toBe(false);
    expect(isScope('ADMIN')).toBe(false);
    expect(isScope('builds:read ')).toBe(false);
  });
});
