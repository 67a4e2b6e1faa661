import { mkdtemp, readdir, rm, symlink } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  GitError,
  GitMirrors,
  InvalidRefError,
  InvalidRepoPathError,
  InvalidRepoUrlError,
  RefNotFoundError,
  resolveInCheckout,
  resolveRef,
} from '@farm/git';
import { runGit } from '../../libs/git/src/run';
import { createGitRepo, type TestGitRepo } from '../helpers/git-repo';

const local = { allowFile: true };

describe('git against real repositories over file://', () => {
  let repo: TestGitRepo;
  let first: string;
  let second: string;

  beforeAll(async () => {
    repo = await createGitRepo({ Dockerfile: 'FROM scratch\n', 'app/one.txt': 'one v1\n' });
    first = repo.commit;
    await repo.tag('light');
    await repo.tag('v1.0', true);
    await repo.git('branch', 'feature', first);
    second = await repo.commitFiles({ 'app/one.txt': 'one v2\n', 'app/two.txt': 'two\n' }, 'second');
    // A tag named like a branch: the branch wins, as with `git clone --branch`.
    await repo.tag('feature', false, second);
  });

  afterAll(async () => {
    await repo.remove();
  });

  describe('resolveRef', () => {
    it('resolves a branch, HEAD and a full ref to the tip', async () => {
      await expect(resolveRef(repo.url, 'main', local)).resolves.toBe(second);
      await expect(resolveRef(repo.url, 'HEAD', local)).resolves.toBe(second);
      await expect(resolveRef(repo.url, 'refs/heads/main', local)).resolves.toBe(second);
    });

    it('resolves a lightweight tag', async () => {
      await expect(resolveRef(repo.url, 'light', local)).resolves.toBe(first);
    });

    it('peels an annotated tag to its commit', async () => {
      const tagObject = await repo.git('rev-parse', 'refs/tags/v1.0');
      expect(tagObject).not.toBe(first);
      await expect(resolveRef(repo.url, 'v1.0', local)).resolves.toBe(first);
      await expect(resolveRef(repo.url, 'refs/tags/v1.0', local)).resolves.toBe(first);
    });

    it('prefers a branch over a tag of the same name', async () => {
      await expect(resolveRef(repo.url, 'feature', local)).resolves.toBe(first);
      await expect(resolveRef(repo.url, 'refs/tags/feature', local)).resolves.toBe(second);
    });

    it('returns a full commit SHA as is, without contacting the remote', async () => {
      await expect(resolveRef('file:///nonexistent/repo', first, local)).resolves.toBe(first);
    });

    it('throws RefNotFoundError for a missing ref', async () => {
      await expect(resolveRef(repo.url, 'nope', local)).rejects.toThrow(RefNotFoundError);
      await expect(resolveRef(repo.url, 'refs/heads/light', local)).rejects.toThrow(RefNotFoundError);
    });

    it('throws a plain GitError with git’s message for an unreachable repository', async () => {
      const error = await resolveRef('file:///nonexistent/repo', 'main', local).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(GitError);
      expect(error).not.toBeInstanceOf(RefNotFoundError);
      expect((error as Error).message).toMatch(/does not appear to be a git repository|not a git repository/i);
    });

    it('validates its input before running git', async () => {
      await expect(resolveRef(repo.url, 'main')).rejects.toThrow(InvalidRepoUrlError);
      await expect(resolveRef(repo.url, '--upload-pack=touch', local)).rejects.toThrow(InvalidRefError);
    });
  });
});

describe('resolveInCheckout', () => {
  let repo: TestGitRepo;
  let work: string;
  let dir: string;

  beforeAll(async () => {
    repo = await createGitRepo({ Dockerfile: 'FROM scratch\n', 'sub/Dockerfile': 'FROM scratch\n' });
    await symlink('/etc/passwd', join(repo.dir, 'evil'));
    await symlink('sub/Dockerfile', join(repo.dir, 'good'));
    await repo.git('add', '--', 'evil', 'good');
    await repo.git('commit', '-q', '-m', 'links');
    const commit = await repo.git('rev-parse', 'HEAD');
    work = await mkdtemp(join(tmpdir(), 'farm-git-links-'));
    dir = join(work, 'checkout');
    await new GitMirrors(join(work, 'mirrors')).checkout(repo.url, commit, dir, local);
  });

  afterAll(async () => {
    await repo.remove();
    await rm(work, { recursive: true, force: true });
  });

  it('resolves paths inside the checkout, following symlinks that stay inside', async () => {
    await expect(resolveInCheckout(dir, './Dockerfile', 'dockerfile')).resolves.toBe(join(dir, 'Dockerfile'));
    await expect(resolveInCheckout(dir, 'good', 'dockerfile')).resolves.toBe(join(dir, 'sub/Dockerfile'));
    await expect(resolveInCheckout(dir, '.', 'context')).resolves.toBe(dir);
  });

  it('refuses a symlink leading outside and a missing path', async () => {
    await expect(resolveInCheckout(dir, 'evil', 'dockerfile')).rejects.toThrow(InvalidRepoPathError);
    await expect(resolveInCheckout(dir, 'evil', 'dockerfile')).rejects.toThrow(/outside/);
    await expect(resolveInCheckout(dir, 'nope', 'dockerfile')).rejects.toThrow(/does not exist/);
  });
});

describe('resolveRef against a server that never answers', () => {
  let server: Server;
  let port: number;
  const sockets = new Set<Socket>();
  const closed: Promise<void>[] = [];

  beforeAll(async () => {
    server = createServer((socket) => {
      sockets.add(socket);
      socket.resume(); // read, so the peer's close is noticed
      closed.push(new Promise((resolve) => socket.on('close', () => resolve())));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as { port: number }).port;
  });

  afterAll(async () => {
    for (const socket of sockets) socket.destroy();
    await new Promise((resolve) => server.close(resolve));
  });

  it('gives up after timeoutMs and kills git', async () => {
    const started = Date.now();
    const before = closed.length;
    await expect(
      resolveRef(`git://127.0.0.1:${port}/repo.git`, 'main', { timeoutMs: 300, allowFile: true }),
    ).rejects.toThrow(/timed out after 300 ms/);
    expect(Date.now() - started).toBeLessThan(5_000);
    // The connection closes because git itself is gone, not because we closed it.
    await Promise.all(closed.slice(before));
  });
});

describe('transport restrictions, below the URL validation', () => {
  let work: string;

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'farm-git-hardening-'));
  });

  afterAll(async () => {
    await rm(work, { recursive: true, force: true });
  });

  it('git itself refuses ext:: and file:// (when not enabled), so a URL that slipped past validation runs nothing', async () => {
    const marker = join(work, 'pwned');
    const ext = runGit(['ls-remote', '--', `ext::sh -c touch% ${marker}`], { cwd: work, timeoutMs: 10_000 });
    await expect(ext).rejects.toThrow(/transport 'ext' not allowed/);
    const repo = await createGitRepo({ a: 'a' });
    try {
      await expect(runGit(['ls-remote', '--', repo.url], { cwd: work, timeoutMs: 10_000 })).rejects.toThrow(
        /transport 'file' not allowed/,
      );
      await expect(runGit(['ls-remote', '--', repo.url], { cwd: work, allowFile: true })).resolves.toContain(
        repo.commit,
      );
    } finally {
      await repo.remove();
    }
    await expect(readdir(work)).resolves.not.toContain('pwned');
  });
});
