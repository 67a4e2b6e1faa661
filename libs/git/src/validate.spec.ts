import { InvalidRefError, InvalidRepoPathError, InvalidRepoUrlError } from './errors';
import { isCommitSha, validateRefName, validateRepoPath, validateRepoUrl } from './validate';

describe('validateRepoUrl', () => {
  const network = { allowFile: false };

  it.each([
    'https://github.com/a/b.git',
    'https://github.com/a/b',
    'https://git.example.com:8443/group/sub/repo.git',
    'git@github.com:a/b.git',
    'github.com:a/b.git',
    'ssh://git@host:22/a/b',
    'ssh://host/a/b.git',
    'user@[::1]:repo.git',
  ])('accepts %s and returns it unchanged', (url) => {
    expect(validateRepoUrl(url, network)).toBe(url);
  });

  it.each([
    ['ext::sh -c touch% /tmp/pwned', /whitespace/],
    ['ext::sh', /remote-helper/],
    ['fd::3', /remote-helper/],
    ['--upload-pack=touch /tmp/pwned', /whitespace/],
    ['--upload-pack=touch', /starts with '-'/],
    ['-oProxyCommand=touch', /starts with '-'/],
    ['ssh://-oProxyCommand=touch/a/b', /host starts with '-'/],
    ['-oProxyCommand=x:a/b', /starts with '-'/],
    ['host:-oProxyCommand=x', /path starts with '-'/],
    ['file:///x', /file:\/\/ URLs are not allowed/],
    ['/srv/git/repo.git', /local paths/],
    ['./repo', /local paths/],
    ['repo', /local paths/],
    ['http://github.com/a/b.git', /http:\/\/ scheme is not supported/],
    ['ftp://host/a/b', /ftp:\/\/ scheme is not supported/],
    ['https://user:secret@github.com/a/b.git', /credentials/],
    ['https://token@github.com/a/b.git', /credentials/],
    ['ssh://git:secret@host/a/b', /credentials/],
    ['https://github.com/a/b\n.git', /control/],
    ['https://github.com/a/%0a/b', /control/],
    ['https://github.com/', /path is missing/],
    ['https://github.com', /path is missing/],
    ['', /empty/],
    [`https://github.com/${'a'.repeat(3000)}`, /longer/],
  ])('rejects %s', (url, message) => {
    expect(() => validateRepoUrl(url, network)).toThrow(InvalidRepoUrlError);
    expect(() => validateRepoUrl(url, network)).toThrow(message);
  });

  it('accepts git:// (unauthenticated) only when local transports are allowed', () => {
    const url = 'git://git.kernel.org/pub/scm/git/git.git';
    expect(() => validateRepoUrl(url, network)).toThrow(/git:\/\/ URLs are not allowed/);
    expect(validateRepoUrl(url, { allowFile: true })).toBe(url);
  });

  it('accepts file:// only when allowed', () => {
    expect(validateRepoUrl('file:///tmp/repo', { allowFile: true })).toBe('file:///tmp/repo');
    expect(validateRepoUrl('file://localhost/tmp/repo', { allowFile: true })).toBe('file://localhost/tmp/repo');
    expect(() => validateRepoUrl('file://otherhost/tmp/repo', { allowFile: true })).toThrow(/must not name a host/);
    expect(() => validateRepoUrl('/tmp/repo', { allowFile: true })).toThrow(/local paths/);
    expect(() => validateRepoUrl('ext::sh', { allowFile: true })).toThrow(/remote-helper/);
  });
});

describe('validateRefName', () => {
  it.each(['main', 'HEAD', 'v1.2.3', 'feature/x-y_z', 'refs/heads/main', 'refs/tags/v1', 'release-2024.01', 'a@b'])(
    'accepts %s',
    (ref) => {
      expect(validateRefName(ref)).toBe(ref);
    },
  );

  it.each([
    ['', /empty/],
    ['-main', /starts with '-'/],
    ['--upload-pack=x', /starts with '-'/],
    ['a..b', /'\.\.'/],
    ['a b', /whitespace/],
    ['a\tb', /whitespace/],
    ['a\u0000b', /control/],
    ['a~1', /~/],
    ['a^{}', /~/],
    ['a:b', /~/],
    ['a?', /~/],
    ['a*', /~/],
    ['a[b', /~/],
    ['a\\b', /~/],
    ['a@{1}', /@\{/],
    ['@', /@\{/],
    ['/main', /empty '\/'/],
    ['main/', /empty '\/'/],
    ['a//b', /empty '\/'/],
    ['main.', /ends with '\.'/],
    ['.hidden', /starts with '\.'/],
    ['a/.b', /starts with '\.'/],
    ['main.lock', /\.lock/],
    ['x'.repeat(256), /longer/],
  ])('rejects %j', (ref, message) => {
    expect(() => validateRefName(ref)).toThrow(InvalidRefError);
    expect(() => validateRefName(ref)).toThrow(message);
  });
});

describe('isCommitSha', () => {
  it('accepts full lowercase SHA-1 and SHA-256 ids', () => {
    expect(isCommitSha('a'.repeat(40))).toBe(true);
    expect(isCommitSha('0123456789abcdef'.repeat(4))).toBe(true);
  });

  it.each(['', 'abc1234', 'A'.repeat(40), 'g'.repeat(40), 'a'.repeat(41), 'a'.repeat(39), ` ${'a'.repeat(40)}`])(
    'rejects %j',
    (value) => {
      expect(isCommitSha(value)).toBe(false);
    },
  );
});

describe('validateRepoPath', () => {
  it.each([
    ['Dockerfile', 'Dockerfile'],
    ['./Dockerfile', 'Dockerfile'],
    ['docker//app/Dockerfile', 'docker/app/Dockerfile'],
    ['.', '.'],
    ['./', '.'],
    ['app/', 'app'],
    ['app/../other', 'other'],
    ['a/b/..', 'a'],
    ['dir with space/Dockerfile', 'dir with space/Dockerfile'],
  ])('normalizes %j to %j', (path, expected) => {
    expect(validateRepoPath(path, 'context')).toBe(expected);
  });

  it.each([
    ['', /empty/],
    ['/etc/passwd', /relative/],
    ['..', /outside/],
    ['../x', /outside/],
    ['a/../../x', /outside/],
    ['a\u0000b', /NUL/],
    ['a\nb', /control/],
    ['a\u0085b', /control/],
  ])('rejects %j', (path, message) => {
    expect(() => validateRepoPath(path, 'dockerfile')).toThrow(InvalidRepoPathError);
    expect(() => validateRepoPath(path, 'dockerfile')).toThrow(message);
  });

  it('names the field in the error', () => {
    try {
      validateRepoPath('../x', 'dockerfile');
      throw new Error('expected a throw');
    } catch (error) {
      expect(error).toBeInstanceOf(InvalidRepoPathError);
      expect((error as InvalidRepoPathError).field).toBe('dockerfile');
      expect((error as Error).message).toMatch(/^dockerfile: /);
    }
  });
});
