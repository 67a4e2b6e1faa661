import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GitMirrors, RefNotFoundError } from '@farm/git';
import { createGitRepo, type TestGitRepo } from '../helpers/git-repo';

const local = { allowFile: true };

describe('GitMirrors against real repositories over file://', () => {
  let repo: TestGitRepo;
  let work: string;
  let mirrors: GitMirrors;
  let checkouts = 0;
  const nextDir = () => join(work, `checkout-${++checkouts}`);

  beforeEach(async () => {
    repo = await createGitRepo({ Dockerfile: 'FROM scratch\n', 'app.txt': 'v1\n' });
    work = await mkdtemp(join(tmpdir(), 'farm-mirror-spec-'));
    mirrors = new GitMirrors(join(work, 'mirrors'));
  });

  afterEach(async () => {
    await repo.remove();
    await rm(work, { recursive: true, force: true });
  });

  it('fetches a commit once, then checks it out again without the remote', async () => {
    const first = nextDir();
    await expect(mirrors.checkout(repo.url, repo.commit, first, local)).resolves.toEqual({ fetched: true });
    expect(await readFile(join(first, 'app.txt'), 'utf8')).toBe('v1\n');

    // The origin is gone: only the mirror can serve the commit now.
    await repo.remove();
    const second = nextDir();
    await expect(mirrors.checkout(repo.url, repo.commit, second, local)).resolves.toEqual({ fetched: false });
    expect(await readFile(join(second, 'app.txt'), 'utf8')).toBe('v1\n');
    // The checkout borrows the mirror's objects instead of copying them.
    expect(await readdir(join(second, '.git', 'objects', 'pack'))).toEqual([]);
  });

  it('fetches only a new commit into the same mirror and checks out exactly it', async () => {
    await mirrors.checkout(repo.url, repo.commit, nextDir(), local);
    const next = await repo.commitFiles({ 'app.txt': 'v2\n' });
    const dir = nextDir();
    await expect(mirrors.checkout(repo.url, next, dir, local)).resolves.toEqual({ fetched: true });
    expect(await readFile(join(dir, 'app.txt'), 'utf8')).toBe('v2\n');
    // The older commit is still there for a rebuild.
    const old = nextDir();
    await expect(mirrors.checkout(repo.url, repo.commit, old, local)).resolves.toEqual({ fetched: false });
    expect(await readFile(join(old, 'app.txt'), 'utf8')).toBe('v1\n');
    expect(await readdir(join(work, 'mirrors'))).toEqual([mirrors.mirrorPath(repo.url).split('/').pop()]);
  });

  it('serves parallel checkouts of different commits of one repository', async () => {
    const commits = [repo.commit];
    for (let i = 2; i <= 4; i++) commits.push(await repo.commitFiles({ 'app.txt': `v${i}\n` }));
    const dirs = commits.map(() => nextDir());
    await Promise.all(commits.map((commit, i) => mirrors.checkout(repo.url, commit, dirs[i], local)));
    for (let i = 0; i < commits.length; i++) {
      expect(await readFile(join(dirs[i], 'app.txt'), 'utf8')).toBe(`v${i + 1}\n`);
    }
  });

  it('reports a commit the remote lacks and keeps the mirror usable', async () => {
    await mirrors.checkout(repo.url, repo.commit, nextDir(), local);
    await expect(mirrors.checkout(repo.url, 'f'.repeat(40), nextDir(), local)).rejects.toThrow(RefNotFoundError);
    await expect(mirrors.checkout(repo.url, repo.commit, nextDir(), local)).resolves.toEqual({ fetched: false });
  });

  it('keeps one mirror per repository URL', async () => {
    const other = await createGitRepo({ 'other.txt': 'other\n' });
    try {
      await mirrors.checkout(repo.url, repo.commit, nextDir(), local);
      const dir = nextDir();
      await mirrors.checkout(other.url, other.commit, dir, local);
      expect(await readFile(join(dir, 'other.txt'), 'utf8')).toBe('other\n');
      expect(mirrors.mirrorPath(other.url)).not.toBe(mirrors.mirrorPath(repo.url));
      expect(await readdir(join(work, 'mirrors'))).toHaveLength(2);
    } finally {
      await other.remove();
    }
  });

  it('refuses a file:// repository unless allowed, like checkoutCommit', async () => {
    await expect(mirrors.checkout(repo.url, repo.commit, nextDir())).rejects.toThrow(/file/i);
  });
});
