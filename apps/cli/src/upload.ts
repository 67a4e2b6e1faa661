import { mkdtemp, realpath, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { ContextError, packContext } from '@farm/archive';
import { UsageError } from './errors';
import type { FarmClient } from './farm-client';

/** The farm refuses larger contexts (413); checked here first so nothing is sent in vain. */
export const MAX_CONTEXT_BYTES = 512 * 1024 * 1024;

/** A build context on the farm, named by its digest. */
export interface UploadedContext {
  digest: string;
  size: number;
  /** The Dockerfile's path inside the context. */
  dockerfile: string;
  /** False when the farm had this very context already. */
  uploaded: boolean;
}

/**
 * `farm build PATH --upload`: packs the directory PATH as the build context, as `.dockerignore`
 * leaves it (uncommitted files included: no git involved), into a deterministic .tar.gz, and
 * uploads it unless the farm already has that digest. `-f` is taken relative to the current
 * directory, as docker does, and must be inside the context.
 *
 * @throws UsageError for a missing context or Dockerfile, a symlink out of the context, or a
 *   context over MAX_CONTEXT_BYTES; the farm's errors as FarmApiError.
 */
export async function uploadContext(
  client: FarmClient,
  path: string,
  dockerfileFlag: string | undefined,
  log: (line: string) => void,
): Promise<UploadedContext> {
  const root = await realpath(path).catch(() => {
    throw new UsageError(`${path}: no such directory`);
  });
  if (!(await stat(root)).isDirectory()) throw new UsageError(`${path} is not a directory`);
  const dockerfile = await dockerfileInContext(root, dockerfileFlag);

  const scratch = await mkdtemp(join(tmpdir(), 'farm-context-'));
  try {
    const archive = join(scratch, 'context.tar.gz');
    let packed;
    try {
      packed = await packContext(root, archive, { alwaysInclude: [dockerfile], maxBytes: MAX_CONTEXT_BYTES });
    } catch (error) {
      if (error instanceof ContextError) throw new UsageError(`cannot pack ${path}: ${error.message}`);
      throw error;
    }
    for (const skipped of packed.skipped) log(`warning: ${skipped} is not a file, directory or symlink: left out`);
    const described = `${packed.entries} entries, ${formatBytes(packed.size)}, ${packed.digest}`;
    if (await client.hasContext(packed.digest)) {
      log(`context ${described}: already on the farm`);
      return { digest: packed.digest, size: packed.size, dockerfile, uploaded: false };
    }
    log(`uploading context ${described}`);
    await client.uploadContext(packed.digest, archive, packed.size);
    return { digest: packed.digest, size: packed.size, dockerfile, uploaded: true };
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}

/** The Dockerfile as a "/"-separated path inside the context; it must exist. */
async function dockerfileInContext(root: string, flag: string | undefined): Promise<string> {
  let file = join(root, 'Dockerfile');
  if (flag !== undefined) {
    const absolute = resolve(flag);
    const dir = await realpath(dirname(absolute)).catch(() => {
      throw new UsageError(`-f ${flag}: no such directory ${dirname(absolute)}`);
    });
    file = join(dir, basename(absolute));
  }
  const rel = relative(root, file);
  if (rel === '' || rel === '..' || rel.startsWith(`..${sep}`) || isAbsolute(rel)) {
    throw new UsageError(`with --upload the Dockerfile must be inside the context ${root}; ${file} is not`);
  }
  const found = await stat(file).catch(() => null);
  if (!found?.isFile()) throw new UsageError(`${file}: no such Dockerfile`);
  return rel.split(sep).join('/');
}

/** "812 B", "3.4 kB", "12.0 MB". */
function formatBytes(bytes: number): string {
  if (bytes < 1000) return `${bytes} B`;
  if (bytes < 1_000_000) return `${(bytes / 1000).toFixed(1)} kB`;
  return `${(bytes / 1_000_000).toFixed(1)} MB`;
}
