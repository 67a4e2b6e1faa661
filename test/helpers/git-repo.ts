import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** A real git repository in a temp dir, for tests. */
export interface TestGitRepo {
  /** The repository's working tree (non-bare; fetchable over `url`). */
  dir: string;
  /** `file://` URL of the repository. */
  url: string;
  /** The first commit, with the files given to {@link createGitRepo}. */
  commit: string;
  /** Writes `files` (paths relative to the repo, parents created), commits them on `main`, returns the new SHA. */
  commitFiles(files: Record<string, string>, message?: string): Promise<string>;
  /** Tags `commit` (default: HEAD), lightweight unless `annotated`. */
  tag(name: string, annotated?: boolean, commit?: string): Promise<void>;
  /** Runs any git command in the repository and returns its trimmed stdout. */
  git(...args: string[]): Promise<string>;
  /** Deletes the repository. */
  remove(): Promise<void>;
}

/**
 * Creates a git repository in a new temp dir with `files` committed on branch `main`.
 * Authors, committers and dates are fixed, and neither the user's nor the system's git config is
 * read, so the same calls give the same SHAs on every machine.
 */
export async function createGitRepo(files: Record<string, string>): Promise<TestGitRepo> {
  const dir = await mkdtemp(join(tmpdir(), 'farm-git-repo-'));
  let commits = 0;

  const git = async (...args: string[]): Promise<string> => {
    const { stdout } = await run('git', args, { cwd: dir, env: gitEnv(commits) });
    return stdout.trim();
  };

  const commitFiles = async (changes: Record<string, string>, message = `commit ${commits + 1}`): Promise<string> => {
    for (const [path, content] of Object.entries(changes)) {
      const file = join(dir, path);
      await mkdir(dirname(file), { recursive: true });
      await writeFile(file, content);
    }
    await git('add', '--all', '--', '.');
    await git('commit', '--quiet', '--allow-empty', '-m', message);
    commits += 1;
    return git('rev-parse', 'HEAD');
  };

  await git('init', '--quiet', '--initial-branch=main', '--template=', '.');
  const commit = await commitFiles(files, 'initial commit');

  return {
    dir,
    url: pathToFileURL(dir).href,
    commit,
    commitFiles,
    tag: async (name, annotated = false, target = 'HEAD') => {
      await git('tag', ...(annotated ? ['-a', '-m', `tag ${name}`] : []), '--', name, target);
    },
    git,
    remove: () => rm(dir, { recursive: true, force: true }),
  };
}

function gitEnv(sequence: number): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (!key.startsWith('GIT_')) env[key] = value;
  }
  // One second per commit keeps commit order (and `git log`) meaningful.
  const date = `${1_700_000_000 + sequence} +0000`;
  return {
    ...env,
    GIT_CONFIG_NOSYSTEM: '1',
    GIT_CONFIG_GLOBAL: '/dev/null',
    GIT_AUTHOR_NAME: 'Farm Test',
    GIT_AUTHOR_EMAIL: 'test@farm.invalid',
    GIT_AUTHOR_DATE: date,
    GIT_COMMITTER_NAME: 'Farm Test',
    GIT_COMMITTER_EMAIL: 'test@farm.invalid',
    GIT_COMMITTER_DATE: date,
    LC_ALL: 'C',
  };
}
