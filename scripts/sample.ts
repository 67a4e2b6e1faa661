import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { pushBusyboxBase } from './lib/base-images';

const run = promisify(execFile);

/**
 * What the example request printed by `npm start` builds: a multi-arch busybox base in the
 * local registry (nothing can be pulled from the internet) and a small git repository whose
 * Dockerfile records the architecture it ran on.
 */
export async function seedSample(registryHost: string, dir: string): Promise<{ repoUrl: string; base: string }> {
  const base = await pushBusyboxBase(registryHost);
  if (!existsSync(join(dir, '.git'))) {
    await mkdir(dir, { recursive: true });
    await writeFile(
      join(dir, 'Dockerfile'),
      `FROM ${base}\nRUN uname -m > /arch\nCOPY hello.txt /hello.txt\nCMD ["cat", "/arch"]\n`,
    );
    await writeFile(join(dir, 'hello.txt'), 'hello from buildfarm\n');
    const git = (...args: string[]) =>
      run('git', ['-c', 'user.name=buildfarm', '-c', 'user.email=farm@localhost', ...args], { cwd: dir });
    await git('init', '--quiet', '--initial-branch=main');
    await git('add', '.');
    await git('commit', '--quiet', '-m', 'sample app');
  }
  return { repoUrl: pathToFileURL(dir).href, base };
}
