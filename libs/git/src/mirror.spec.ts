import { mkdir, mkdtemp, readdir, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GitMirrors } from './mirror';

describe('GitMirrors.byLastUse and remove', () => {
  let root: string;
  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), 'farm-mirrors-'));
  });
  afterEach(async () => {
    await rm(root, { recursive: true, force: true });
  });

  async function mirror(name: string, lastUsed?: Date): Promise<string> {
    const path = join(root, name);
    await mkdir(join(path, 'objects'), { recursive: true });
    await writeFile(join(path, 'HEAD'), 'ref: refs/heads/main\n');
    if (lastUsed) await utimes(path, lastUsed, lastUsed);
    return path;
  }

  test('least recently used first, leftovers of a creation or removal before any mirror', async () => {
    const recent = await mirror('b'.repeat(40) + '.git', new Date('2026-03-02T00:00:00Z'));
    const old = await mirror('a'.repeat(40) + '.git', new Date('2026-01-01T00:00:00Z'));
    const halfMade = await mirror('c'.repeat(40) + '.git.new-x1Y2z3');
    expect((await new GitMirrors(root).byLastUse()).map((entry) => entry.path)).toEqual([halfMade, old, recent]);
    expect(await new GitMirrors(join(root, 'none')).byLastUse()).toEqual([]);
  });

  test('a removed mirror leaves nothing behind', async () => {
    const path = await mirror('a'.repeat(40) + '.git');
    const leftover = await mirror('a'.repeat(40) + '.git.removing-0a1b2c3d');
    await new GitMirrors(root).remove(path);
    await new GitMirrors(root).remove(leftover);
    expect(await readdir(root)).toEqual([]);
  });
});
