import { execFile } from 'node:child_process';
import { realpath, stat } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { UsageError } from './errors';

const run = promisify(execFile);

/** What `farm build` sends about the local git checkout it runs in. */
export interface CheckoutSource {
  /** The `origin` remote's URL: agents clone from there. */
  repo: string;
  /** `HEAD`, the commit every platform builds. */
  commit: string;
  /** The build context, relative to the repository root ("." for the root). */
  context: string;
  /** The Dockerfile, relative to the repository root. */
  dockerfile: string;
  /** Reasons the build may not be what the user sees locally (unpushed commit, local changes). */
  warnings: string[];
}

async function git(cwd: string, ...args: string[]): Promise<string> {
  const { stdout } = await run('git', args, { cwd, maxBuffer: 16 * 1024 * 1024 });
  return stdout.trim();
}

/**
 * Reads the checkout containing `path`: origin URL, HEAD, and `path` / `dockerfile` (as given on
 * the command line, relative to the current directory) as paths inside the repository.
 *
 * @throws UsageError when `path` is not in a git checkout, has no origin or no commit, or a
 *   path leads outside the repository.
 */
export async function readCheckout(path: string, dockerfile: string | undefined): Promise<CheckoutSource> {
  const contextDir = await existingDirectory(path);
  let root: string;
  try {
    root = await realpath(await git(contextDir, 'rev-parse', '--show-toplevel'));
  } catch {
    throw new UsageError(`${path} is not inside a git checkout (building uncommitted files needs --upload)`);
  }
  const repo = await git(root, 'remote', 'get-url', 'origin').catch(() => {
    throw new UsageError(`the checkout ${root} has no "origin" remote for the farm to clone from`);
  });
  const commit = await git(root, 'rev-parse', '--verify', 'HEAD^{commit}').catch(() => {
    throw new UsageError(`the checkout ${root} has no commit yet`);
  });

  const context = insideRepo(root, contextDir, 'the build context');
  const dockerfilePath =
    dockerfile === undefined
      ? context === '.'
        ? 'Dockerfile'
        : `${context}/Dockerfile`
      : insideRepo(root, await realpathOfFile(dockerfile), 'the Dockerfile');

  const warnings: string[] = [];
  const remoteBranches = await git(root, 'branch', '-r', '--contains', 'HEAD').catch(() => '');
  if (remoteBranches === '') {
    warnings.push(
      `commit ${commit.slice(0, 12)} is not on any remote branch: push it, or the farm's agents cannot fetch it`,
    );
  }
  if ((await git(root, 'status', '--porcelain', '--untracked-files=no')) !== '') {
    warnings.push(`the worktree has uncommitted changes: the farm builds commit ${commit.slice(0, 12)} without them`);
  }
  return { repo: remoteUrl(repo), commit, context, dockerfile: dockerfilePath, warnings };
}

/** A remote given as a local path (`git clone /srv/app.git`) becomes a `file://` URL the farm understands. */
function remoteUrl(remote: string): string {
  return isAbsolute(remote) ? pathToFileURL(remote).href : remote;
}

async function existingDirectory(path: string): Promise<string> {
  const dir = await realpath(path).catch(() => {
    throw new UsageError(`${path}: no such directory`);
  });
  if (!(await stat(dir)).isDirectory()) throw new UsageError(`${path} is not a directory`);
  return dir;
}

/** The real path of a file, which need not exist locally (the farm reads it from the commit). */
async function realpathOfFile(file: string): Promise<string> {
  const absolute = resolve(file);
  const dir = await realpath(dirname(absolute)).catch(() => {
    throw new UsageError(`-f ${file}: no such directory ${dirname(absolute)}`);
  });
  return join(dir, basename(absolute));
}

/** `path` relative to the repository root, with "/" separators; "." for the root itself. */
function insideRepo(root: string, path: string, what: string): string {
  const rel = relative(root, path);
  if (rel === '') return '.';
  if (rel === '..' || rel.startsWith(`..${sep}`) || isAbsolute(rel))
    throw new UsageError(`${what} ${path} is outside the repository ${root}`);
  return rel.split(sep).join('/');
}
