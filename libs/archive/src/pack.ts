import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { lstat, readdir, readFile, readlink, realpath } from 'node:fs/promises';
import { join, posix, relative, sep } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import { DockerignoreMatcher, parseDockerignore } from './dockerignore';
import { encodeHeader, END_OF_ARCHIVE, padding, type TarEntry } from './tar';

/** A build context that cannot be packed as it is (a symlink leading out of it, a file changing). */
export class ContextError extends Error {}

/** A context member: its archive entry and where it is on disk. */
export interface ContextEntry extends TarEntry {
  absolute: string;
}

export interface ContextListing {
  entries: ContextEntry[];
  /** Sockets, FIFOs and devices: not part of a build context, left out. */
  skipped: string[];
}

export interface PackedContext {
  /** `sha256:<hex>` of the .tar.gz file. */
  digest: string;
  /** Bytes of the .tar.gz file. */
  size: number;
  /** Archive members (files, directories, symlinks). */
  entries: number;
  skipped: string[];
}

const DOCKERIGNORE = '.dockerignore';

/**
 * The members of the build context `root`, in archive order (depth first, names sorted), as
 * `.dockerignore` leaves them. `alwaysInclude` (the Dockerfile) is kept even when ignored, as
 * Docker sends it anyway; `.dockerignore` itself is always kept too, so a builder that applies
 * it again (buildah does, to COPY) sees the same rules.
 *
 * @throws ContextError for a symlink that leads outside the context, or a bad .dockerignore.
 */
export async function listContext(root: string, alwaysInclude: string[] = []): Promise<ContextListing> {
  const realRoot = await realpath(root);
  const ignoreText = await readFile(join(realRoot, DOCKERIGNORE), 'utf8').catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return '';
    throw error;
  });
  let matcher: DockerignoreMatcher;
  try {
    matcher = new DockerignoreMatcher(parseDockerignore(ignoreText));
  } catch (error) {
    throw new ContextError((error as Error).message);
  }
  const always = new Set([DOCKERIGNORE, ...alwaysInclude.map((path) => posix.normalize(path))]);
  const entries: ContextEntry[] = [];
  const skipped: string[] = [];

  const walk = async (dir: string): Promise<void> => {
    const names = (await readdir(dir === '' ? realRoot : join(realRoot, dir))).sort();
    for (const name of names) {
      const path = dir === '' ? name : `${dir}/${name}`;
      const absolute = join(realRoot, path);
      const stat = await lstat(absolute);
      const excluded = matcher.excludes(path) && !always.has(path);
      if (stat.isDirectory()) {
        const needed = [...always].some((kept) => kept.startsWith(`${path}/`));
        if (excluded && !needed && !(matcher.hasExceptions && matcher.mayIncludeBelow(path))) continue;
        const at = entries.length;
        entries.push({ path, absolute, type: 'directory', mode: 0o755, size: 0 });
        await walk(path);
        // An ignored directory is sent only as the parent of something re-included.
        if (excluded && entries.length === at + 1) entries.pop();
      } else if (excluded) {
        continue;
      } else if (stat.isFile()) {
        entries.push({ path, absolute, type: 'file', mode: stat.mode & 0o111 ? 0o755 : 0o644, size: stat.size });
      } else if (stat.isSymbolicLink()) {
        const linkTarget = await readlink(absolute);
        await checkLinkInside(realRoot, path, linkTarget);
        entries.push({ path, absolute, type: 'symlink', mode: 0o777, size: 0, linkTarget });
      } else {
        skipped.push(path);
      }
    }
  };
  await walk('');
  return { entries, skipped };
}

/**
 * Packs the build context `root` (see listContext) into `output` as a gzip-compressed tar that
 * depends only on the tree: members sorted, modes normalized to 0644/0755, owner 0, times 0.
 * The same tree gives the same bytes, hence the same digest (with the same zlib).
 *
 * @throws ContextError when a symlink leads outside the context, a file changes while it is
 *   read, or the archive grows beyond `maxBytes`.
 */
export async function packContext(
  root: string,
  output: string,
  options: { alwaysInclude?: string[]; maxBytes?: number } = {},
): Promise<PackedContext> {
  const { entries, skipped } = await listContext(root, options.alwaysInclude);
  const hash = createHash('sha256');
  let size = 0;
  const maxBytes = options.maxBytes ?? Number.MAX_SAFE_INTEGER;
  await pipeline(
    Readable.from(tarMembers(entries)),
    createGzip(),
    async function* (compressed: AsyncIterable<Buffer>) {
      for await (const chunk of compressed) {
        size += chunk.length;
        if (size > maxBytes) throw new ContextError(`the compressed context exceeds ${maxBytes} bytes`);
        hash.update(chunk);
        yield chunk;
      }
    },
    createWriteStream(output, { mode: 0o600 }),
  );
  return { digest: `sha256:${hash.digest('hex')}`, size, entries: entries.length, skipped };
}

async function* tarMembers(entries: ContextEntry[]): AsyncGenerator<Buffer> {
  for (const entry of entries) {
    yield encodeHeader(entry);
    if (entry.type !== 'file') continue;
    let read = 0;
    for await (const chunk of createReadStream(entry.absolute) as AsyncIterable<Buffer>) {
      read += chunk.length;
      if (read > entry.size) break;
      yield chunk;
    }
    if (read !== entry.size) throw new ContextError(`${entry.path} changed while the context was packed`);
    yield padding(entry.size);
  }
  yield END_OF_ARCHIVE;
}

/**
 * A symlink may point anywhere inside the context (Docker sends it as a link), never outside:
 * the builder would not have what it points to, and a link out of the context must not leak
 * into the archive as a way out of the agent's work dir either.
 */
async function checkLinkInside(realRoot: string, path: string, target: string): Promise<void> {
  const lexical = posix.normalize(posix.join(posix.dirname(path), target));
  const outside = posix.isAbsolute(target) || lexical === '..' || lexical.startsWith('../');
  let resolved: string | undefined;
  if (!outside) {
    resolved = await realpath(join(realRoot, path)).catch(() => undefined); // dangling: the lexical check decides
  }
  const escapes =
    resolved !== undefined &&
    (relative(realRoot, resolved) === '..' || relative(realRoot, resolved).startsWith(`..${sep}`));
  if (outside || escapes) {
    throw new ContextError(`symlink ${path} -> ${target} points outside the build context`);
  }
}
