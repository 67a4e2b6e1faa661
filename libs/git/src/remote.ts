import { mkdir, readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { GitError, InvalidRefError, RefNotFoundError } from './errors';
import { runGit, type GitTransportOptions } from './run';
import { isCommitSha, validateRefName, validateRepoUrl } from './validate';

/** Options for {@link resolveRef}. */
export interface ResolveRefOptions extends GitTransportOptions {
  signal?: AbortSignal;
  /** Give up after this long. Default 60 s. */
  timeoutMs?: number;
}

/** Options for {@link checkoutCommit}. */
export interface CheckoutOptions extends GitTransportOptions {
  signal?: AbortSignal;
  /** Give up after this long. Default: no limit besides `signal`. */
  timeoutMs?: number;
  /** Receives git's progress and messages, one line at a time. */
  onLog?: (line: string) => void;
}

const DEFAULT_RESOLVE_TIMEOUT_MS = 60_000;

/**
 * Resolves `ref` in the remote repository to a commit SHA with `git ls-remote`, without cloning.
 *
 * - `HEAD`: the remote's default branch tip.
 * - `refs/...`: exactly that ref.
 * - a short name: the branch `refs/heads/<ref>` if it exists, else the tag `refs/tags/<ref>`
 *   (the order `git clone --branch` uses).
 * - a full commit SHA: returned as is, without contacting the remote (ls-remote lists refs, not
 *   commits); {@link checkoutCommit} reports it with RefNotFoundError if the remote lacks it.
 *
 * Annotated tags are peeled to the commit they point to.
 *
 * @throws InvalidRepoUrlError / InvalidRefError for malformed input, RefNotFoundError when the
 * remote has no such ref, GitError when git fails (unreachable, denied, timeout), or the signal's
 * reason when aborted.
 */
export async function resolveRef(repoUrl: string, ref: string, opts: ResolveRefOptions = {}): Promise<string> {
  validateRepoUrl(repoUrl, { allowFile: opts.allowFile === true });
  if (isCommitSha(ref)) return ref;
  validateRefName(ref);

  const candidates = ref === 'HEAD' || ref.startsWith('refs/') ? [ref] : [`refs/heads/${ref}`, `refs/tags/${ref}`];
  // ls-remote lists a tag's peeled commit only when asked for `<tag>^{}` explicitly.
  const patterns = candidates.flatMap((name) => (name.startsWith('refs/tags/') ? [name, `${name}^{}`] : [name]));
  const output = await runGit(['ls-remote', '--', repoUrl, ...patterns], {
    ...opts,
    cwd: tmpdir(),
    timeoutMs: opts.timeoutMs ?? DEFAULT_RESOLVE_TIMEOUT_MS,
  });

  const refs = new Map<string, string>();
  for (const line of output.split('\n')) {
    const [sha, name] = line.split('\t');
    if (sha && name && isCommitSha(sha)) refs.set(name, sha);
  }
  for (const name of candidates) {
    const sha = refs.get(`${name}^{}`) ?? refs.get(name);
    if (sha) return sha;
  }
  throw new RefNotFoundError(`ref ${JSON.stringify(ref)} not found in ${repoUrl}`);
}

/**
 * Checks out exactly `commit` of `repoUrl` into `dir`, which must be empty or absent: `git init`,
 * a shallow fetch of that one commit (a full fetch when the server refuses to serve a commit by
 * SHA), and a detached checkout. Verifies HEAD is `commit` afterwards. Submodules and LFS objects
 * are not fetched.
 *
 * @throws InvalidRepoUrlError / InvalidRefError for malformed input, RefNotFoundError when the
 * remote does not have the commit, GitError when git fails, or the signal's reason when aborted.
 */
export async function checkoutCommit(
  repoUrl: string,
  commit: string,
  dir: string,
  opts: CheckoutOptions = {},
): Promise<void> {
  validateRepoUrl(repoUrl, { allowFile: opts.allowFile === true });
  if (!isCommitSha(commit)) {
    throw new InvalidRefError(`invalid commit ${JSON.stringify(commit)}: expected a full lowercase hex SHA`);
  }
  await prepareEmptyDir(dir);

  const deadline = opts.timeoutMs === undefined ? undefined : Date.now() + opts.timeoutMs;
  const timedOut = (): boolean => deadline !== undefined && Date.now() >= deadline;
  const git = async (args: string[]): Promise<string> => {
    try {
      return await runGit(args, {
        ...opts,
        cwd: dir,
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

  // No templates: nothing (sample hooks included) from the host's git installation in the checkout.
  await git(['init', '--quiet', '--template=', '--', '.']);
  try {
    await git(['fetch', '--progress', '--no-tags', '--depth=1', '--', repoUrl, commit]);
  } catch (error) {
    if (!(error instanceof GitError) || opts.signal?.aborted || timedOut()) throw error;
    // Servers without uploadpack.allowReachableSHA1InWant (and v0 servers) refuse a bare SHA.
    opts.onLog?.('fetching the commit by SHA was refused; fetching all branches and tags');
    await git([
      'fetch',
      '--progress',
      '--no-tags',
      '--',
      repoUrl,
      '+refs/heads/*:refs/remotes/origin/*',
      '+refs/tags/*:refs/tags/*',
    ]);
    const present = await git(['cat-file', '-t', commit]).catch(() => '');
    if (present.trim() !== 'commit') {
      throw new RefNotFoundError(`commit ${commit} not found in ${repoUrl}`);
    }
  }
  await git(['checkout', '--quiet', '--detach', commit, '--']);

  const head = (await git(['rev-parse', '--verify', 'HEAD'])).trim();
  if (head !== commit) throw new GitError(`checked out ${head} instead of ${commit}`);
}

async function prepareEmptyDir(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  const entries = await readdir(dir);
  if (entries.length > 0) throw new Error(`checkout directory ${dir} is not empty`);
}
