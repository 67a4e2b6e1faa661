import { repositoryFromCloneUrl } from './repository';

describe('repositoryFromCloneUrl', () => {
  it.each([
    ['https://github.com/owner/repo.git', 'owner/repo'],
    ['https://github.com/owner/repo', 'owner/repo'],
    ['https://github.com/owner/repo/', 'owner/repo'],
    ['https://x-access-token:secret@github.com/owner/repo.git', 'owner/repo'],
    ['git@github.com:owner/repo.git', 'owner/repo'],
    ['github.com:owner/repo', 'owner/repo'],
    ['git@gitlab.com:group/sub/project.git', 'group/sub/project'],
    ['https://gitlab.example/group/sub/project.git', 'group/sub/project'],
    ['ssh://git@gitea.example:2222/owner/my.repo.git', 'owner/my.repo'],
    ['git://host.example/owner/repo', 'owner/repo'],
  ])('%s -> %s', (url, expected) => {
    expect(repositoryFromCloneUrl(url)).toBe(expected);
  });

  it.each([
    'file:///srv/git/repo.git',
    '/srv/git/owner/repo.git',
    './owner/repo',
    'https://github.com/repo.git',
    'ssh://host/~user/repo.git',
    'https://github.com/owner/../repo',
    '',
  ])('refuses %s', (url) => {
    expect(() => repositoryFromCloneUrl(url)).toThrow(/repository|URL|path/);
  });

  it('never echoes credentials', () => {
    expect(() => repositoryFromCloneUrl('https://user:secret@host.example/repo')).toThrow(
      expect.objectContaining({ message: expect.not.stringContaining('secret') }),
    );
  });
});
