import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GitError, GitMirrors, InvalidRefError, InvalidRepoUrlError, RefNotFoundError } from '@farm/git';
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

  it('checks out exactly an older commit, not the branch tip, and passes on git’s messages', async () => {
    await repo.commitFiles({ 'app.txt': 'v2\n', 'later.txt': 'later\n' });
    const dir = nextDir();
    const lines: string[] = [];
    await mirrors.checkout(repo.url, repo.commit, dir, { ...local, onLog: (line) => lines.push(line) });

    expect(await readFile(join(dir, 'app.txt'), 'utf8')).toBe('v1\n');
    expect(await readFile(join(dir, 'Dockerfile'), 'utf8')).toBe('FROM scratch\n');
    expect((await readdir(dir)).sort()).toEqual(['.git', 'Dockerfile', 'app.txt']);
    expect(lines.length).toBeGreaterThan(0);
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

  // Only the fallback fetch of every branch and tag tells a missing commit from a refused SHA.
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

  it('refuses a non-empty directory, a short SHA and a file:// URL when not allowed', async () => {
    const dir = nextDir();
    await mkdir(dir);
    await writeFile(join(dir, 'x'), 'x');
    await expect(mirrors.checkout(repo.url, repo.commit, dir, local)).rejects.toThrow(/not empty/);
    await expect(mirrors.checkout(repo.url, repo.commit.slice(0, 7), nextDir(), local)).rejects.toThrow(
      InvalidRefError,
    );
    await expect(mirrors.checkout(repo.url, repo.commit, nextDir())).rejects.toThrow(InvalidRepoUrlError);
  });

  it('checks out a repository with a submodule without the submodule', async () => {
    const inner = await createGitRepo({ 'secret.txt': 'from the submodule' });
    try {
      await repo.git('-c', 'protocol.file.allow=always', 'submodule', 'add', '--quiet', inner.url, 'vendor');
      await repo.git('commit', '-q', '-m', 'submodule');
      const commit = await repo.git('rev-parse', 'HEAD');
      const dir = nextDir();
      await mirrors.checkout(repo.url, commit, dir, local);
      expect(await readFile(join(dir, '.gitmodules'), 'utf8')).toContain(inner.url);
      // The submodule's directory exists (it is in the tree) but nothing was fetched into it.
      expect(await readdir(join(dir, 'vendor'))).toEqual([]);
    } finally {
      await inner.remove();
    }
  });
});

/** A TCP server on loopback that counts connections; `answer` does what it likes with each. */
async function startServer(answer: (socket: Socket) => void): Promise<{
  url: (scheme: string) => string;
  readonly accepted: number;
  stop(): Promise<void>;
}> {
  const sockets = new Set<Socket>();
  let accepted = 0;
  const server: Server = createServer((socket) => {
    accepted++;
    sockets.add(socket);
    answer(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  return {
    url: (scheme) => `${scheme}://${scheme === 'ssh' ? 'git@' : ''}127.0.0.1:${port}/repo.git`,
    get accepted() {
      return accepted;
    },
    async stop() {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

describe('GitMirrors against a git host that does not answer', () => {
  const commit = 'a'.repeat(40);
  let work: string;
  let mirrors: GitMirrors;

  beforeEach(async () => {
    work = await mkdtemp(join(tmpdir(), 'farm-mirror-down-'));
    mirrors = new GitMirrors(join(work, 'mirrors'));
  });

  afterEach(async () => {
    await rm(work, { recursive: true, force: true });
  });

  describe('a host that accepts and never says a word', () => {
    let silent: Awaited<ReturnType<typeof startServer>>;

    beforeAll(async () => {
      silent = await startServer((socket) => socket.resume());
    });

    afterAll(async () => {
      await silent.stop();
    });

    it('gives up the checkout after timeoutMs', async () => {
      await expect(
        mirrors.checkout(silent.url('git'), commit, join(work, 'checkout'), { timeoutMs: 300, allowFile: true }),
      ).rejects.toThrow(/checkout of a+ timed out after 300 ms/);
    });

    it('stops when the signal aborts, rejecting with its reason', async () => {
      const controller = new AbortController();
      const reason = new Error('build canceled');
      setTimeout(() => controller.abort(reason), 200);
      await expect(
        mirrors.checkout(silent.url('git'), commit, join(work, 'checkout'), {
          signal: controller.signal,
          allowFile: true,
        }),
      ).rejects.toBe(reason);
    });
  });

  // A host that is down cannot refuse a SHA: the fallback fetch of every ref would only knock again.
  it.each(['git', 'https', 'ssh'])(
    'opens one connection to a host that drops it (%s://), without the fallback fetch',
    async (scheme) => {
      const dropping = await startServer((socket) => socket.destroy());
      try {
        const error = await mirrors
          .checkout(dropping.url(scheme), commit, join(work, 'checkout'), {
            allowFile: true,
            // No user or system ssh configuration: it could add connections (ControlMaster, ProxyJump).
            sshCommand: 'ssh -F /dev/null',
            timeoutMs: 30_000,
          })
          .catch((e: unknown) => e);
        expect(error).toBeInstanceOf(GitError);
        expect(error).not.toBeInstanceOf(RefNotFoundError);
        expect(dropping.accepted).toBe(1);
      } finally {
        await dropping.stop();
      }
    },
  );
});
