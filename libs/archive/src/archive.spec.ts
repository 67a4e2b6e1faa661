import { execFile } from 'node:child_process';
import { createReadStream } from 'node:fs';
import {
  chmod,
  lstat,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  readlink,
  rm,
  symlink,
  utimes,
  writeFile,
} from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { gzipSync } from 'node:zlib';
import { ContextError, listContext, packContext } from './pack';
import { extractTarGz, UnsafeArchiveError } from './extract';
import { encodeHeader, END_OF_ARCHIVE, padding, type TarEntry } from './tar';

const run = promisify(execFile);
let scratch: string;

beforeEach(async () => {
  scratch = await mkdtemp(join(tmpdir(), 'farm-archive-'));
});
afterEach(async () => {
  await rm(scratch, { recursive: true, force: true });
});

const LONG_NAME = `deep/${'d'.repeat(120)}/${'f'.repeat(90)}.txt`;

/** A context with ignored and re-included files, an executable, a symlink and a long path. */
async function makeTree(root: string, files: Record<string, string> = {}): Promise<void> {
  const all: Record<string, string> = {
    Dockerfile: 'FROM scratch\nCOPY . /\n',
    '.dockerignore': '# build output\nnode_modules\n*.log\n!important.log\nsecret/**\n',
    'app/main.sh': '#!/bin/sh\necho hi\n',
    'app/data.txt': 'data\n',
    'debug.log': 'noise\n',
    'important.log': 'keep me\n',
    'node_modules/lib/index.js': 'module.exports = 1;\n',
    'secret/key.pem': 'PRIVATE\n',
    [LONG_NAME]: 'long\n',
    ...files,
  };
  for (const [path, content] of Object.entries(all)) {
    await mkdir(dirname(join(root, path)), { recursive: true });
    await writeFile(join(root, path), content);
  }
  await chmod(join(root, 'app/main.sh'), 0o755);
  await mkdir(join(root, 'empty-dir'));
  await symlink('data.txt', join(root, 'app/link'));
}

async function listing(root: string): Promise<string[]> {
  const { stdout } = await run('tar', ['-tzf', root]);
  return stdout.split('\n').filter(Boolean);
}

describe('packContext', () => {
  test('the same tree gives the same digest, whatever the mtimes, umask or order of creation', async () => {
    const a = join(scratch, 'a');
    const b = join(scratch, 'b');
    await makeTree(a);
    await makeTree(b, { 'zzz-first.txt': 'x' });
    await rm(join(b, 'zzz-first.txt'));
    await utimes(join(b, 'app/data.txt'), new Date('2001-01-01'), new Date('2001-01-01'));
    await chmod(join(b, 'app/data.txt'), 0o600); // not executable: still 0644 in the archive
    const first = await packContext(a, join(scratch, 'a.tar.gz'));
    const second = await packContext(b, join(scratch, 'b.tar.gz'));
    expect(first.digest).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(second.digest).toBe(first.digest);
    expect(second.size).toBe(first.size);

    await writeFile(join(b, 'app/data.txt'), 'changed\n');
    const third = await packContext(b, join(scratch, 'c.tar.gz'));
    expect(third.digest).not.toBe(first.digest);
  });

  test('the digest is the sha256 of the file written', async () => {
    await makeTree(join(scratch, 'ctx'));
    const packed = await packContext(join(scratch, 'ctx'), join(scratch, 'ctx.tar.gz'));
    const { stdout } = await run('sha256sum', [join(scratch, 'ctx.tar.gz')]);
    expect(packed.digest).toBe(`sha256:${stdout.split(' ')[0]}`);
    expect(packed.size).toBe((await readFile(join(scratch, 'ctx.tar.gz'))).length);
  });

  test('leaves out what .dockerignore ignores, keeps "!" exceptions, the Dockerfile and .dockerignore', async () => {
    const root = join(scratch, 'ctx');
    await makeTree(root, {
      '.dockerignore': 'Dockerfile\n.dockerignore\nnode_modules\n*.log\n!important.log\nsecret/**\n',
    });
    await packContext(root, join(scratch, 'ctx.tar.gz'), { alwaysInclude: ['Dockerfile'] });
    // GNU tar reads it: the format is standard (pax for the long name).
    const names = await listing(join(scratch, 'ctx.tar.gz'));
    expect(names).toEqual(
      expect.arrayContaining(['Dockerfile', '.dockerignore', 'app/', 'app/main.sh', 'app/link', 'important.log']),
    );
    expect(names).toContain(LONG_NAME);
    expect(names).toContain('empty-dir/');
    for (const ignored of ['debug.log', 'node_modules/', 'node_modules/lib/index.js', 'secret/key.pem']) {
      expect(names).not.toContain(ignored);
    }
    // secret/** ignores what is in secret/, not secret/ itself (as Docker).
    expect(names).toContain('secret/');
  });

  test('a Dockerfile in an ignored directory is sent with its parent directory, and nothing else of it', async () => {
    const root = join(scratch, 'ctx');
    await makeTree(root, { '.dockerignore': 'build\n', 'build/Dockerfile': 'FROM scratch\n', 'build/other': 'x' });
    const { entries } = await listContext(root, ['build/Dockerfile']);
    const paths = entries.map((e) => e.path);
    expect(paths).toEqual(expect.arrayContaining(['build', 'build/Dockerfile']));
    expect(paths).not.toContain('build/other');
  });

  test('a "!" exception below an ignored directory is found', async () => {
    const root = join(scratch, 'ctx');
    await makeTree(root, {
      '.dockerignore': 'vendor\n!vendor/keep/**\n',
      'vendor/keep/a/b.txt': 'b',
      'vendor/drop.txt': 'd',
    });
    const paths = (await listContext(root)).entries.map((e) => e.path);
    expect(paths).toEqual(expect.arrayContaining(['vendor', 'vendor/keep', 'vendor/keep/a', 'vendor/keep/a/b.txt']));
    expect(paths).not.toContain('vendor/drop.txt');
  });

  test('refuses symlinks that point outside the context', async () => {
    for (const target of ['/etc/passwd', '../outside', 'app/../../outside']) {
      const root = join(scratch, `ctx-${Math.random().toString(36).slice(2)}`);
      await makeTree(root);
      await symlink(target, join(root, 'escape'));
      await expect(packContext(root, join(scratch, 'x.tar.gz'))).rejects.toThrow(ContextError);
    }
    // Through a link to a directory: lexically inside, really outside.
    const root = join(scratch, 'ctx-via-dir');
    await makeTree(root);
    await symlink('.', join(root, 'here'));
    await symlink('here/..', join(root, 'parent'));
    await expect(packContext(root, join(scratch, 'y.tar.gz'))).rejects.toThrow(/points outside/);
  });

  test('an ignored symlink that points outside is no problem', async () => {
    const root = join(scratch, 'ctx');
    await makeTree(root);
    await symlink('/etc/passwd', join(root, 'escape.log'));
    await expect(packContext(root, join(scratch, 'x.tar.gz'))).resolves.toMatchObject({ entries: expect.any(Number) });
  });

  test('refuses an archive larger than maxBytes', async () => {
    await makeTree(join(scratch, 'ctx'));
    await expect(packContext(join(scratch, 'ctx'), join(scratch, 'x.tar.gz'), { maxBytes: 100 })).rejects.toThrow(
      ContextError,
    );
  });
});

describe('extractTarGz', () => {
  test('unpacks what packContext packed: contents, exec bits, symlinks, long names', async () => {
    const root = join(scratch, 'ctx');
    await makeTree(root);
    await packContext(root, join(scratch, 'ctx.tar.gz'));
    const dest = join(scratch, 'out');
    await mkdir(dest);
    const result = await extractTarGz(createReadStream(join(scratch, 'ctx.tar.gz')), dest);
    expect(result.entries).toBeGreaterThan(5);
    expect(await readFile(join(dest, 'app/data.txt'), 'utf8')).toBe('data\n');
    expect(await readFile(join(dest, LONG_NAME), 'utf8')).toBe('long\n');
    expect((await lstat(join(dest, 'app/main.sh'))).mode & 0o777).toBe(0o755);
    expect((await lstat(join(dest, 'app/data.txt'))).mode & 0o777).toBe(0o644);
    expect(await readlink(join(dest, 'app/link'))).toBe('data.txt');
    expect((await lstat(join(dest, 'empty-dir'))).isDirectory()).toBe(true);
    expect(await readdir(dest)).not.toContain('node_modules');
  });

  test('reads archives written by GNU tar', async () => {
    const root = join(scratch, 'ctx');
    await makeTree(root);
    await run('tar', ['-czf', join(scratch, 'gnu.tar.gz'), '-C', root, '.']);
    const dest = join(scratch, 'out');
    await mkdir(dest);
    await extractTarGz(createReadStream(join(scratch, 'gnu.tar.gz')), dest);
    expect(await readFile(join(dest, LONG_NAME), 'utf8')).toBe('long\n');
    expect(await readFile(join(dest, 'node_modules/lib/index.js'), 'utf8')).toContain('module.exports');
  });

  const file = (path: string, content = 'x'): [TarEntry, string] => [
    { path, type: 'file', mode: 0o644, size: Buffer.byteLength(content) },
    content,
  ];
  const link = (path: string, linkTarget: string): [TarEntry, string] => [
    { path, type: 'symlink', mode: 0o777, size: 0, linkTarget },
    '',
  ];
  /** A header as encodeHeader writes it, then edited (to what it would never write) and re-checksummed. */
  function edited(entry: TarEntry, edit: (block: Buffer) => void): Buffer {
    const block = encodeHeader(entry);
    edit(block);
    block.fill(' ', 148, 156);
    let sum = 0;
    for (const byte of block) sum += byte;
    block.write(`${sum.toString(8).padStart(6, '0')}\0`, 148, 7, 'latin1');
    return block;
  }
  const named = (raw: string) => (block: Buffer) => {
    block.fill(0, 0, 100);
    block.write(raw, 0, 100, 'utf8');
  };
  function archive(members: ([TarEntry, string] | Buffer)[]): Buffer {
    const parts: Buffer[] = [];
    for (const member of members) {
      if (Buffer.isBuffer(member)) {
        parts.push(member);
        continue;
      }
      const [entry, content] = member;
      parts.push(encodeHeader(entry), Buffer.from(content), padding(Buffer.byteLength(content)));
    }
    parts.push(END_OF_ARCHIVE);
    return gzipSync(Buffer.concat(parts));
  }
  async function* chunks(data: Buffer): AsyncGenerator<Buffer> {
    yield data;
  }

  const one = { path: 'x', type: 'file', mode: 0o644, size: 0 } as const;
  test.each([
    ['a ".." path', archive([edited(one, named('../evil'))])],
    ['an absolute path', archive([edited(one, named('/tmp/evil'))])],
    ['a symlink leading out', archive([link('l', '../../etc')])],
    ['an absolute symlink', archive([link('l', '/etc')])],
    ['a member below a symlink', archive([link('l', 'sub'), file('l/x')])],
    ['a hard link', archive([edited(one, (block) => block.write('1', 156, 'latin1'))])],
    ['a device', archive([edited(one, (block) => block.write('3', 156, 'latin1'))])],
  ])('refuses %s and writes nothing outside the directory', async (_what, data) => {
    const dest = join(scratch, 'a', 'b', 'out');
    await mkdir(dest, { recursive: true });
    await expect(extractTarGz(chunks(data), dest)).rejects.toThrow(UnsafeArchiveError);
    expect(await readdir(join(scratch, 'a', 'b'))).toEqual(['out']);
    expect(await readdir(scratch)).toEqual(['a']);
  });

  test('a later member never writes through a symlink of the same name', async () => {
    const dest = join(scratch, 'out');
    await mkdir(dest);
    await writeFile(join(scratch, 'victim'), 'untouched');
    // Lexically inside, but the file member replaces the link instead of following it.
    await extractTarGz(chunks(archive([link('x', 'y'), file('x', 'new')])), dest);
    expect(await readFile(join(scratch, 'victim'), 'utf8')).toBe('untouched');
    expect((await lstat(join(dest, 'x'))).isFile()).toBe(true);
  });

  test('a failing source fails the extraction with its own error', async () => {
    const data = archive([file('a', 'content')]);
    async function* mismatching(): AsyncGenerator<Buffer> {
      yield data;
      throw new Error('blob sha256:abc: content hashes to sha256:def');
    }
    const dest = join(scratch, 'out');
    await mkdir(dest);
    await expect(extractTarGz(mismatching(), dest)).rejects.toThrow(/hashes to/);
  });

  test('refuses archives that unpack to more than maxBytes', async () => {
    const dest = join(scratch, 'out');
    await mkdir(dest);
    const data = archive([file('big', 'x'.repeat(5000))]);
    await expect(extractTarGz(chunks(data), dest, { maxBytes: 1000 })).rejects.toThrow(UnsafeArchiveError);
  });

  test('refuses a truncated archive', async () => {
    const whole = archive([file('a', 'y'.repeat(3000))]);
    const { gunzipSync } = await import('node:zlib');
    const truncated = gzipSync(gunzipSync(whole).subarray(0, 1024));
    const dest = join(scratch, 'out');
    await mkdir(dest);
    await expect(extractTarGz(chunks(truncated), dest)).rejects.toThrow(/truncated/);
  });
});
