import { mkdir } from 'node:fs/promises';
import { UnrecoverableError } from 'bullmq';
import { extractTarGz, TarFormatError, UnsafeArchiveError } from '@farm/archive';
import { RegistryError, type RegistryClient } from '@farm/oci';
import type { BuildContext } from './builder';

/** Where an agent finds uploaded contexts: the farm's context repository (FARM_CONTEXT_REPOSITORY). */
export interface ContextSource {
  registry: RegistryClient;
  repository?: { registry: string; repository: string };
}

/**
 * Fetches the uploaded build context `digest` (a .tar.gz blob, `farm build --upload`) and
 * unpacks it into `dest`, which becomes the job's source tree in place of a checkout. The
 * blob's sha256 is verified as it streams; the archive may not write outside `dest` (absolute
 * paths, `..`, escaping symlinks, hard links and devices are refused).
 *
 * @throws UnrecoverableError when the context is missing, unusable, or this agent has no
 *   context repository configured: a retry would meet the same.
 */
export async function fetchUploadedContext(
  digest: string,
  source: ContextSource,
  dest: string,
  context: BuildContext,
): Promise<void> {
  if (!source.repository) {
    throw new UnrecoverableError(
      `build of the uploaded context ${digest}: this agent has no FARM_CONTEXT_REPOSITORY to fetch it from`,
    );
  }
  const where = `${source.repository.registry}/${source.repository.repository}`;
  context.log(`fetching the uploaded context ${digest} from ${where}`);
  await mkdir(dest, { recursive: true });
  try {
    const blob = await source.registry.readBlobStream(source.repository, digest);
    const { entries, bytes } = await extractTarGz(abortable(blob, context.signal), dest);
    context.log(`unpacked ${entries} files and directories (${bytes} bytes)`);
  } catch (error) {
    if (error instanceof RegistryError && error.status === 404) {
      throw new UnrecoverableError(`the uploaded context ${digest} is not in ${where}`);
    }
    if (error instanceof UnsafeArchiveError || error instanceof TarFormatError) {
      throw new UnrecoverableError(`the uploaded context ${digest} is unusable: ${error.message}`);
    }
    throw error;
  }
}

/** Stops reading `source` once the job is canceled. */
async function* abortable(source: AsyncIterable<Uint8Array>, signal: AbortSignal): AsyncGenerator<Uint8Array> {
  for await (const chunk of source) {
    signal.throwIfAborted();
    yield chunk;
  }
}
