import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { matchesRefFilter, RefFilterError, validateRefFilter } from './ref-filter';

describe('matchesRefFilter', () => {
  test.each<[string, string[] | undefined, boolean]>([
    // no filter
    ['main', undefined, true],
    ['feature/x', [], true],
    // literal names, case-sensitive
    ['main', ['main'], true],
    ['main2', ['main'], false],
    ['Main', ['main'], false],
    ['main', ['develop', 'main'], true],
    // *: one segment
    ['main', ['*'], true],
    ['feature/x', ['*'], false],
    ['feature/x', ['feature/*'], true],
    ['feature/', ['feature/*'], true],
    ['feature/x/y', ['feature/*'], false],
    ['v1.2.3', ['v*'], true],
    ['v1.2.3', ['v*.*.*'], true],
    ['v22', ['v*.*.*'], false],
    ['release-1', ['release-*'], true],
    // **: across segments
    ['feature/x/y', ['feature/**'], true],
    ['feature/x', ['feature/**'], true],
    ['feature', ['feature/**'], false],
    ['anything/at/all', ['**'], true],
    ['x', ['**/x'], true],
    ['a/b/x', ['**/x'], true],
    ['ax', ['**/x'], false],
    ['a/c', ['a/**/c'], true],
    ['a/b/c', ['a/**/c'], true],
    ['a/b/d', ['a/**/c'], false],
    ['feat-1/x', ['feat**'], true],
    ['a/b', ['a***'], true],
    // ?: one character, not '/'
    ['v1.2.3', ['v?.?.?'], true],
    ['v1.22.3', ['v?.?.?'], false],
    ['a/b', ['a?b'], false],
    ['é', ['?'], true],
    ['🚀', ['?'], true],
    // everything else is literal
    ['v1x2', ['v1.2'], false],
    ['a+b', ['a+b'], true],
    ['aab', ['a+b'], false],
    ['a(b)|c', ['a(b)|c'], true],
    ['$x{1}', ['$x{1}'], true],
    ['x', ['$x{1}'], false],
    // exclusions
    ['wip/x', ['!wip/*'], false],
    ['main', ['!wip/*'], true],
    ['main', ['!wip/*', '!tmp-*'], true],
    ['tmp-1', ['!wip/*', '!tmp-*'], false],
    ['wip/x', ['**', '!wip/*'], false],
    ['feature/x', ['**', '!wip/*'], true],
    ['main', ['main', '!main'], false],
    ['main', ['!main', 'main'], false],
    ['dev', ['main', '!wip/*'], false],
    ['release/1.x', ['release/**', '!release/**/rc'], true],
    ['release/1/rc', ['release/**', '!release/**/rc'], false],
  ])('%s with %j -> %s', (name, patterns, expected) => {
    expect(matchesRefFilter(name, patterns)).toBe(expected);
  });

  // Names as the recorded forge payloads carry them.
  describe('on the recorded payloads', () => {
    const payload = (file: string): Record<string, any> =>
      JSON.parse(readFileSync(join(__dirname, '../../../test/fixtures/webhooks', file), 'utf8')) as Record<string, any>;
    const strip = (ref: string) => ref.replace(/^refs\/(heads|tags)\//, '');

    test.each<[string, () => string, string[], boolean]>([
      ['GitHub branch master', () => strip(payload('github/push-branch-created.json').ref), ['main', 'master'], true],
      ['GitHub tag simple-tag', () => strip(payload('github/push-tag-deleted.json').ref), ['v*'], false],
      ['GitLab branch main', () => strip(payload('gitlab/push.json').ref), ['!main'], false],
      ['GitLab tag v22', () => strip(payload('gitlab/tag-push.json').ref), ['v*'], true],
      ['GitLab tag v22 is not x.y.z', () => strip(payload('gitlab/tag-push.json').ref), ['v*.*.*'], false],
      ['Gitea tag v1.0.0', () => payload('gitea/tag-push.json').ref, ['v*.*.*'], true],
      ['Gitea branch fdsafdsa', () => strip(payload('gitea/push-branch-created.json').ref), ['feature/**'], false],
    ])('%s', (_case, name, patterns, expected) => {
      expect(matchesRefFilter(name(), patterns)).toBe(expected);
    });
  });
});

describe('validateRefFilter', () => {
  test.each<[string[]]>([
    [[]],
    [['main']],
    [['**']],
    [['!wip/*']],
    [['release/**', 'v?.*', '!release/**/rc']],
    [['feature/{a}', 'a+b', 'é']],
    [['x'.repeat(255)]],
  ])('%j is valid', (patterns) => {
    expect(() => validateRefFilter(patterns)).not.toThrow();
  });

  test.each<[string[], RegExp]>([
    [[''], /a ref filter pattern is empty/],
    [['main', ''], /a ref filter pattern is empty/],
    [['!'], /pattern "!" has nothing after '!'/],
    [['!!x'], /starts with '!!'/],
    [['a b'], /pattern "a b" contains " ", which no branch or tag name can hold/],
    [['a\tb'], /contains "\\t"/],
    [['a\u0000'], /contains "\\u0000"/],
    [['a~1'], /contains "~"/],
    [['a^'], /contains "\^"/],
    [['a:b'], /contains ":"/],
    [['[ab]'], /contains "\["/],
    [['a]'], /contains "]"/],
    [['a\\b'], /contains "\\\\"/],
    [['x'.repeat(256)], /longer than 255 characters/],
  ])('%j -> RefFilterError', (patterns, message) => {
    const validate = () => validateRefFilter(patterns);
    expect(validate).toThrow(RefFilterError);
    expect(validate).toThrow(message);
  });

  test('not a list', () => {
    expect(() => validateRefFilter('main' as unknown as string[])).toThrow(RefFilterError);
  });
});
