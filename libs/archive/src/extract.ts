import { chmod, lstat, mkdir, open, rm, symlink } from 'node:fs/promises';
import { join, posix } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { BLOCK, decodeHeader, parsePaxRecords, TarFormatError } from './tar';

export { TarFormatError };

/** An archive member that would leave the target directory, or a kind of member a context never needs. */
export class UnsafeArchiveError extends Error {}

export interface ExtractOptions {
  /** Refuse archives whose files add up to more than this (a gzip bomb). Default 8 GiB. */
  maxBytes?: number;
  /** Refuse archives with more members than this. Default 1,000,000. */
  maxEntries?: number;
}

const DEFAULT_MAX_BYTES = 8 * 1024 ** 3;
const DEFAULT_MAX_ENTRIES = 1_000_000;
/** Pax and GNU long-name headers are a few hundred bytes; anything larger is not a context's. */
const MAX_META_BYTES = 1024 * 1024;

/**
 * Unpacks a gzip-compressed tar (a build context) into the existing, empty directory `dest`,
 * refusing anything that could write outside it: absolute paths, `..`, symlinks whose target
 * leaves the directory, members below a symlink, hard links, devices and FIFOs. Permission
 * bits are kept (without setuid/setgid/sticky); owners and times are not.
 *
 * @throws UnsafeArchiveError, TarFormatError, or the error of `source` (e.g. a digest mismatch).
 */
export async function extractTarGz(
  source: AsyncIterable<Uint8Array>,
  dest: string,
  options: ExtractOptions = {},
): Promise<{ entries: number; bytes: number }> {
  const gunzip = createGunzip();
  const feeding = pipeline(Readable.from(source), gunzip);
  try {
    const result = await extractTar(gunzip, dest, options);
    await feeding;
    return result;
  } catch (error) {
    gunzip.destroy();
    // A failing source (digest mismatch, lost connection) explains more than a truncated archive.
    const sourceError = await feeding.then(
      () => undefined,
      (failure: unknown) => failure,
    );
    if (sourceError && (sourceError as NodeJS.ErrnoException).code !== 'ERR_STREAM_PREMATURE_CLOSE') throw sourceError;
    throw error;
  }
}

/** Unpacks an uncompressed tar stream into `dest`; see extractTarGz. */
export async function extractTar(
  stream: AsyncIterable<Uint8Array>,
  dest: string,
  options: ExtractOptions = {},
): Promise<{ entries: number; bytes: number }> {
  const maxBytes = options.maxBytes ?? DEFAULT_MAX_BYTES;
  const maxEntries = options.maxEntries ?? DEFAULT_MAX_ENTRIES;
  const reader = new BlockReader(stream[Symbol.asyncIterator]());
  const symlinks = new Set<string>();
  const directories = new Map<string, number>();
  let pending: { path?: string; linkpath?: string; size?: number } = {};
  let entries = 0;
  let bytes = 0;

  for (;;) {
    const block = await reader.read(BLOCK, true);
    if (block === null) break; // end of stream without the end-of-archive blocks, as GNU tar allows
    const header = decodeHeader(block);
    if (header === null) {
      await reader.drain(); // the rest is zero padding; reading it lets the source verify its digest
      break;
    }
    const size = pending.size ?? header.size;
    if (header.typeflag === 'x' || header.typeflag === 'g' || header.typeflag === 'L' || header.typeflag === 'K') {
      if (size > MAX_META_BYTES) throw new TarFormatError(`tar metadata header of ${size} bytes`);
      const data = await reader.readEntry(size);
      if (header.typeflag === 'x') {
        const records = parsePaxRecords(data);
        pending = {
          ...pending,
          ...(records.path !== undefined && { path: records.path }),
          ...(records.linkpath !== undefined && { linkpath: records.linkpath }),
          ...(records.size !== undefined && { size: Number(records.size) }),
        };
      } else if (header.typeflag === 'L') {
        pending.path = data.toString('utf8').replace(/\0+$/, '');
      } else if (header.typeflag === 'K') {
        pending.linkpath = data.toString('utf8').replace(/\0+$/, '');
      }
      continue;
    }

    const name = pending.path ?? header.name;
    const linkTarget = pending.linkpath ?? header.linkname;
    pending = {};
    if (++entries > maxEntries) throw new UnsafeArchiveError(`the archive has more than ${maxEntries} members`);
    if (!Number.isSafeInteger(size) || size < 0) throw new TarFormatError(`${name}: invalid size`);
    const path = safePath(name);
    if (path === null) {
      // The root itself ("./"): nothing to create.
      await reader.skipEntry(size);
      continue;
    }
    for (let parent = posix.dirname(path); parent !== '.'; parent = posix.dirname(parent)) {
      if (symlinks.has(parent)) throw new UnsafeArchiveError(`${name}: lies below the symlink ${parent}`);
    }
    const target = join(dest, path);
    const existing = await lstat(target).catch(() => null);

    switch (header.typeflag) {
      case '0':
      case '7': {
        bytes += size;
        if (bytes > maxBytes) throw new UnsafeArchiveError(`the archive unpacks to more than ${maxBytes} bytes`);
        if (existing?.isDirectory()) throw new UnsafeArchiveError(`${name}: a file over a directory`);
        await mkdir(posix.dirname(target), { recursive: true });
        // A later member replaces an earlier one, as tar does; "wx" never follows a symlink there.
        if (existing) await rm(target, { force: true });
        symlinks.delete(path);
        const file = await open(target, 'wx', header.mode & 0o777);
        try {
          for await (const chunk of reader.entryChunks(size)) await file.write(chunk);
        } finally {
          await file.close();
        }
        await chmod(target, header.mode & 0o777);
        break;
      }
      case '5':
        if (existing && !existing.isDirectory())
          throw new UnsafeArchiveError(`${name}: a directory over a file or link`);
        await mkdir(target, { recursive: true });
        directories.set(target, header.mode & 0o777);
        await reader.skipEntry(size);
        break;
      case '2': {
        const resolved = posix.normalize(posix.join(posix.dirname(path), linkTarget));
        if (linkTarget === '' || posix.isAbsolute(linkTarget) || resolved === '..' || resolved.startsWith('../')) {
          throw new UnsafeArchiveError(`${name}: symlink to ${linkTarget} leads outside the context`);
        }
        if (existing?.isDirectory()) throw new UnsafeArchiveError(`${name}: a symlink over a directory`);
        await mkdir(posix.dirname(target), { recursive: true });
        if (existing) await rm(target, { force: true });
        await symlink(linkTarget, target);
        symlinks.add(path);
        await reader.skipEntry(size);
        break;
      }
      case '1':
        throw new UnsafeArchiveError(`${name}: hard links are not allowed in a build context`);
      default:
        throw new UnsafeArchiveError(
          `${name}: entries of type "${header.typeflag}" are not allowed in a build context`,
        );
    }
  }
  // Last, so a read-only directory did not stop its own members from being written.
  for (const [dir, mode] of [...directories].reverse()) await chmod(dir, mode);
  return { entries, bytes };
}

/**
 * The member's path, normalized and relative; null for the archive root. Absolute paths and
 * `..` components are refused rather than rewritten: a build context never has them.
 */
function safePath(name: string): string | null {
  if (name.includes('\0')) throw new UnsafeArchiveError(`member name with a NUL byte`);
  if (name.startsWith('/')) throw new UnsafeArchiveError(`${name}: absolute paths are not allowed`);
  const parts = name.split('/').filter((part) => part !== '' && part !== '.');
  if (parts.includes('..')) throw new UnsafeArchiveError(`${name}: ".." is not allowed in member names`);
  return parts.length === 0 ? null : parts.join('/');
}

/** Reads a byte stream in exact amounts, as tar's 512-byte blocks need. */
class BlockReader {
  private buffered: Buffer[] = [];
  private length = 0;
  private ended = false;

  constructor(private readonly source: AsyncIterator<Uint8Array>) {}

  /** Exactly `n` bytes; null at a clean end of stream when `endOk`. */
  async read(n: number, endOk = false): Promise<Buffer | null> {
    while (this.length < n && !this.ended) await this.pull();
    if (this.length < n) {
      if (endOk && this.length === 0) return null;
      throw new TarFormatError('the archive is truncated');
    }
    // Slices, not copies: headers are 512 bytes out of chunks of 16 KiB and more.
    const parts: Buffer[] = [];
    let wanted = n;
    while (wanted > 0) {
      const first = this.buffered[0];
      if (first.length <= wanted) {
        parts.push(first);
        this.buffered.shift();
        wanted -= first.length;
      } else {
        parts.push(first.subarray(0, wanted));
        this.buffered[0] = first.subarray(wanted);
        wanted = 0;
      }
    }
    this.length -= n;
    return parts.length === 1 ? parts[0] : Buffer.concat(parts);
  }

  /** An entry's content (small: metadata), skipping its block padding. */
  async readEntry(size: number): Promise<Buffer> {
    const data = (await this.read(size)) as Buffer;
    await this.read(paddingOf(size));
    return data;
  }

  /** An entry's content chunk by chunk as it arrives, then its padding skipped. */
  async *entryChunks(size: number): AsyncGenerator<Buffer> {
    let left = size;
    while (left > 0) {
      if (this.length === 0) {
        if (this.ended) throw new TarFormatError('the archive is truncated');
        await this.pull();
        continue;
      }
      const take = Math.min(left, this.length);
      yield (await this.read(take)) as Buffer;
      left -= take;
    }
    await this.read(paddingOf(size));
  }

  async skipEntry(size: number): Promise<void> {
    for await (const chunk of this.entryChunks(size)) void chunk;
  }

  /** Reads to the end of the stream. */
  async drain(): Promise<void> {
    while (!this.ended) {
      await this.pull();
      this.buffered = [];
      this.length = 0;
    }
  }

  private async pull(): Promise<void> {
    const next = await this.source.next();
    if (next.done) {
      this.ended = true;
      return;
    }
    const chunk = Buffer.from(next.value);
    this.buffered.push(chunk);
    this.length += chunk.length;
  }
}

function paddingOf(size: number): number {
  return (BLOCK - (size % BLOCK)) % BLOCK;
}
