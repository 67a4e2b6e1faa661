import { tmpdir } from 'node:os';
import { RefNotFoundError } from './errors';
import { runGit, type GitTransportOptions } from './run';
import { isCommitSha, validateRefName, validateRepoUrl } from './validate';

/** Options for {@link resolveRef}. */
export interface ResolveRefOptions extends GitTransportOptions {
  signal?: AbortSignal;
  /** Give up after this long. Default 60 s. */
  timeoutMs?: number;
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
 *   commits); `GitMirrors.checkout` reports it with RefNotFoundError if the remote lacks it.
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
