import { DockerignoreError, DockerignoreMatcher, globToRegExp, parseDockerignore } from './dockerignore';

const matcher = (text: string) => new DockerignoreMatcher(parseDockerignore(text));

describe('parseDockerignore', () => {
  test('cleans patterns as Docker does: comments, blanks, leading "/", "./", trailing "/", "!" spacing', () => {
    const text =
      '\uFEFF# comment\n\n  node_modules/  \n/build\n./dist/../out\n! keep.txt\n  # not a comment once trimmed\r\n';
    expect(parseDockerignore(text)).toEqual([
      'node_modules',
      'build',
      'out',
      '!keep.txt',
      '# not a comment once trimmed',
    ]);
  });

  test('refuses patterns that point outside the context', () => {
    expect(() => parseDockerignore('../secrets')).toThrow(DockerignoreError);
  });

  test('refuses a lone "!"', () => {
    expect(() => matcher('!')).toThrow(DockerignoreError);
  });
});

describe('globToRegExp', () => {
  test.each([
    ['*.txt', 'a.txt', true],
    ['*.txt', 'dir/a.txt', false],
    ['?.txt', 'a.txt', true],
    ['?.txt', 'ab.txt', false],
    ['a?c', 'a/c', false],
    ['**/*.log', 'x.log', true],
    ['**/*.log', 'a/b/x.log', true],
    ['a/**/b', 'a/b', true],
    ['a/**/b', 'a/x/y/b', true],
    ['a/**', 'a/x/y', true],
    ['**', 'anything/at/all', true],
    ['file.go', 'fileXgo', false],
    ['[a-c].md', 'b.md', true],
    ['[!a-c].md', 'd.md', true],
    ['[^a-c].md', 'a.md', false],
    ['\\*.md', '*.md', true],
    ['\\*.md', 'x.md', false],
    ['a+b(c)|{d}$', 'a+b(c)|{d}$', true],
  ])('%s matches %s: %s', (pattern, path, expected) => {
    expect(globToRegExp(pattern).test(path)).toBe(expected);
  });

  test('an unclosed "[" is a syntax error', () => {
    expect(() => globToRegExp('[abc')).toThrow(DockerignoreError);
  });
});

describe('DockerignoreMatcher', () => {
  test('a pattern excludes what it matches and everything below a directory it matches', () => {
    const m = matcher('node_modules\n*.log\n');
    expect(m.excludes('node_modules')).toBe(true);
    expect(m.excludes('node_modules/x/index.js')).toBe(true);
    expect(m.excludes('debug.log')).toBe(true);
    expect(m.excludes('logs/debug.log')).toBe(false); // "*" does not cross "/"
    expect(m.excludes('src/index.ts')).toBe(false);
  });

  test('"!" re-includes, and the last matching line wins', () => {
    const m = matcher('*.md\n!README*.md\nREADME-secret.md\n');
    expect(m.excludes('CHANGES.md')).toBe(true);
    expect(m.excludes('README.md')).toBe(false);
    expect(m.excludes('README-secret.md')).toBe(true);
  });

  test('"**" spans directories, also none', () => {
    const m = matcher('**/*.tmp\n!keep/**/important.tmp\n');
    expect(m.excludes('a.tmp')).toBe(true);
    expect(m.excludes('deep/down/b.tmp')).toBe(true);
    expect(m.excludes('keep/important.tmp')).toBe(false);
    expect(m.excludes('keep/x/y/important.tmp')).toBe(false);
    expect(m.excludes('keep/other.tmp')).toBe(true);
  });

  test('excluding everything, then re-including some', () => {
    const m = matcher('*\n!src\n!Dockerfile\nsrc/**/*.test.ts\n');
    expect(m.excludes('README.md')).toBe(true);
    expect(m.excludes('src/app/main.ts')).toBe(false);
    expect(m.excludes('src/app/main.test.ts')).toBe(true);
    expect(m.excludes('Dockerfile')).toBe(false);
  });

  test('mayIncludeBelow tells the walk which excluded directories can hold re-included paths', () => {
    const m = matcher('vendor\n!vendor/keep/**\nbuild\n');
    expect(m.hasExceptions).toBe(true);
    expect(m.mayIncludeBelow('vendor')).toBe(true);
    expect(m.mayIncludeBelow('vendor/keep')).toBe(true);
    expect(m.mayIncludeBelow('vendor/drop')).toBe(false);
    expect(m.mayIncludeBelow('build')).toBe(false);
    expect(matcher('a\n!**/x').mayIncludeBelow('a/b/c')).toBe(true);
    expect(matcher('a\n').hasExceptions).toBe(false);
  });
});
