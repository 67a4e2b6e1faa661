import { createHash, randomBytes } from 'node:crypto';
import { access, mkdir, mkdtemp, readdir, readFile, rename, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { GitError, InvalidRefError, RefNotFoundError } from './errors';
import { runGit, type GitTransportOptions } from './run';
import { isCommitSha, validateRepoUrl } from './validate';

/** Options for {@link GitMirrors.checkout}. */
export interface CheckoutOptions extends GitTransportOptions {
  signal?: AbortSignal;
  /** Give up after this long. Default: no limit besides `signal`. */
  timeoutMs?: number;
  /** Receives git's progress and messages, one line at a time. */
  onLog?: (line: string) => void;
}

/**
 * What git says when it gave up before the server could say anything about the commit: the host
 * could not be looked up or reached, the connection dropped (git://), the first HTTP request
 * failed, or ssh never got to upload-pack. A fetch of every ref would fail the same way, with one
 * more connection to a host that is down. A refused or missing SHA reads otherwise ("not our
 * ref", "does not allow request for unadvertised object"); only then can that fallback help.
 */
const FAILED_AT_FIRST_CONTACT =
  /unable to (?:look up|connect to|access)|could not read from remote repository|hung up upon initial contact|connection reset by peer|broken pipe/i;

/** A mirror under the root, or what an interrupted creation or removal of one left. */
export interface MirrorEntry {
  path: string;
  /** The mirror dir's mtime, which each checkout touches; the epoch for leftovers. */
  lastUsed: Date;
}

/** What {@link GitMirrors.checkout} did, for the build log and the bench. */
export interface MirrorCheckout {
  /** False when the mirror already held the commit: nothing went over the network. */
  fetched: boolean;
}

/**
 * One bare mirror per repository under `root` (an agent's state dir), keyed by a hash of the
 * URL. A checkout fetches only a commit the mirror lacks (shallow, into the mirror), then checks
 * it out into a fresh dir that borrows the mirror's objects (git alternates) instead of copying
 * them: a rebuild of a known commit touches no network and copies no objects.
 *
 * Fetches into one mirror are serialized (one lock per repository, within this process: each
 * agent has its own state dir); checkouts from it run in parallel. Mirrors never drop objects
 * (`gc.auto=0`), since checkouts of running jobs read them through alternates; they grow with
 * the commits built, like the layer cache, and may be deleted whenever no job runs. Each checkout
 * sets its mirror dir's mtime, so the mtime tells when a mirror was last used (an agent prunes the
 * least recently used mirrors first when its disk fills).
 */
export class GitMirrors {
  private readonly locks = new Map<string, Promise<unknown>>();

  constructor(private readonly root: string) {}

  /** The mirror's path for `repoUrl`. */
  mirrorPath(repoUrl: string): string {
    return join(this.root, `${createHash('sha256').update(repoUrl).digest('hex').slice(0, 40)}.git`);
  }

  /**
   * Every entry of the root, least recently used first: leftovers of an interrupted creation
   * (`<hash>.git.new-*`) or removal (`<hash>.git.removing-*`) before every mirror.
   */
  async byLastUse(): Promise<MirrorEntry[]> {
    let names: string[];
    try {
      names = await readdir(this.root);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw error;
    }
    const entries = await Promise.all(
      names.map(async (name): Promise<MirrorEntry> => {
        const path = join(this.root, name);
        if (!name.endsWith('.git')) return { path, lastUsed: new Date(0) };
        return { path, lastUsed: (await stat(path)).mtime };
      }),
    );
    return entries.sort((a, b) => a.lastUsed.getTime() - b.lastUsed.getTime());
  }

  /**
   * Removes an entry of {@link byLastUse}. A mirror is renamed out of its place first, so that a
   * removal cut short (the agent killed) never leaves a half-deleted mirror where a checkout
   * would use it, only a leftover. Only while no checkout uses it.
   */
  async remove(path: string): Promise<void> {
    if (!path.endsWith('.git')) return rm(path, { recursive: true, force: true });
    const doomed = `${path}.removing-${randomBytes(4).toString('hex')}`;
    await rename(path, doomed);
    await rm(doomed, { recursive: true, force: true });
  }

  /**
   * Checks out exactly `commit` of `repoUrl` into `dir`, which must be empty or absent, detached,
   * and verifies HEAD. A commit the mirror lacks is fetched shallow by SHA, or, when the server
   * refuses to serve a commit by SHA, with every branch and tag. Submodules and LFS objects are
   * not fetched.
   *
   * @throws InvalidRepoUrlError / InvalidRefError for malformed input, RefNotFoundError when the
   * remote does not have the commit, GitError when git fails (unreachable, denied, timeout), or
   * the signal's reason when aborted.
   */
  async checkout(repoUrl: string, commit: string, dir: string, opts: CheckoutOptions = {}): Promise<MirrorCheckout> {
    validateRepoUrl(repoUrl, { allowFile: opts.allowFile === true });
    if (!isCommitSha(commit)) {
      throw new InvalidRefError(`invalid commit ${JSON.stringify(commit)}: expected a full lowercase hex SHA`);
    }
    await prepareEmptyDir(dir);

    const deadline = opts.timeoutMs === undefined ? undefined : Date.now() + opts.timeoutMs;
    const timedOut = (): boolean => deadline !== undefined && Date.now() >= deadline;
    const git = async (cwd: string, args: string[]): Promise<string> => {
      try {
        return await runGit(args, {
          ...opts,
          cwd,
          timeoutMs: deadline === undefined ? undefined : Math.max(1, deadline - Date.now()),
          onStderrLine: opts.onLog,
        });
      } catch (error) {
        if (timedOut() && !opts.signal?.aborted) {
          throw new GitError(`checkout of ${commit} timed out after ${opts.timeoutMs} ms`);
        }
        throw error;
      }
    };

    const mirror = this.mirrorPath(repoUrl);
    // The checkout's repository is made while the mirror gets the commit: nothing in it needs the commit yet.
    const [fetched] = await Promise.all([
      this.exclusive(mirror, () => this.ensureCommit(mirror, repoUrl, commit, git, opts, timedOut)),
      (async () => {
        // No templates: nothing (sample hooks included) from the host's git installation.
        await git(dir, ['init', '--quiet', '--template=', '--', '.']);
        await writeFile(join(dir, '.git', 'objects', 'info', 'alternates'), `${join(mirror, 'objects')}\n`);
      })(),
    ]);
    const now = new Date();
    await utimes(mirror, now, now);
    await git(dir, ['checkout', '--quiet', '--detach', commit, '--']);
    // A detached HEAD is the commit's SHA itself: read it rather than start git once more.
    const head = (await readFile(join(dir, '.git', 'HEAD'), 'utf8')).trim();
    if (head !== commit) throw new GitError(`checked out ${head} instead of ${commit}`);
    return { fetched };
  }

  /** Makes the mirror hold `commit`; true when it had to fetch it. */
  private async ensureCommit(
    mirror: string,
    repoUrl: string,
    commit: string,
    git: (cwd: string, args: string[]) => Promise<string>,
    opts: CheckoutOptions,
    timedOut: () => boolean,
  ): Promise<boolean> {
    if (!(await exists(join(mirror, 'HEAD')))) await this.createMirror(mirror, git);
    const present = async () => (await git(mirror, ['cat-file', '-t', commit]).catch(() => '')).trim() === 'commit';
    if (await present()) return false;

    opts.onLog?.(`fetching ${commit} into the mirror`);
    try {
      try {
        // The ref keeps the newest fetched commit named; older ones stay (gc.auto=0).
        await git(mirror, [
          'fetch',
          '--progress',
          '--no-tags',
          '--depth=1',
          '--',
          repoUrl,
          `+${commit}:refs/farm/head`,
        ]);
      } catch (error) {
        if (!(error instanceof GitError) || opts.signal?.aborted || timedOut()) throw error;
        if (FAILED_AT_FIRST_CONTACT.test(error.message)) throw error;
        // Servers without uploadpack.allowReachableSHA1InWant (and v0 servers) refuse a bare SHA.
        opts.onLog?.('fetching the commit by SHA was refused; fetching all branches and tags');
        await git(mirror, [
          'fetch',
          '--progress',
          '--no-tags',
          '--',
          repoUrl,
          '+refs/heads/*:refs/remotes/origin/*',
          '+refs/tags/*:refs/tags/*',
        ]);
        if (!(await present())) throw new RefNotFoundError(`commit ${commit} not found in ${repoUrl}`);
      }
    } catch (error) {
      // A mirror left damaged by a failed fetch would fail every later job: start afresh next time.
      // A missing commit or a cancel says nothing about the mirror.
      if (error instanceof GitError && !(error instanceof RefNotFoundError) && !opts.signal?.aborted) {
        await rm(mirror, { recursive: true, force: true });
      }
      throw error;
    }
    return true;
  }

  /** A bare repository, created beside its place and renamed into it, so it is never half made. */
  private async createMirror(mirror: string, git: (cwd: string, args: string[]) => Promise<string>): Promise<void> {
    await mkdir(this.root, { recursive: true });
    const building = await mkdtemp(`${mirror}.new-`);
    try {
      await git(building, ['init', '--quiet', '--bare', '--template=', '--', '.']);
      // Checkouts borrow these objects: nothing may ever delete one.
      await git(building, ['config', 'gc.auto', '0']);
      await rm(mirror, { recursive: true, force: true });
      await rename(building, mirror);
    } finally {
      await rm(building, { recursive: true, force: true });
    }
  }

  /** Runs `task` once every earlier task on the same mirror has ended. */
  private async exclusive<T>(mirror: string, task: () => Promise<T>): Promise<T> {
    const before = this.locks.get(mirror) ?? Promise.resolve();
    const run = before.then(task, task);
    const settled = run.catch(() => undefined);
    this.locks.set(mirror, settled);
    try {
      return await run;
    } finally {
      if (this.locks.get(mirror) === settled) this.locks.delete(mirror);
    }
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}

async function prepareEmptyDir(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  const entries = await readdir(dir);
  if (entries.length > 0) throw new Error(`checkout directory ${dir} is not empty`);
}
