import { Inject, Injectable, Logger } from '@nestjs/common';
import { assembleImageIndex, parsePlatform, parseTagReference, type PlatformImage } from '@farm/domain';
import type { RegistryClient, RepositoryRef } from '@farm/oci';
import { REGISTRY } from './tokens';

export interface PublishRequest {
  /** Where the agents pushed each platform's image by digest. */
  source: RepositoryRef;
  /** In the order the build asked for them. */
  images: PlatformImage[];
  tags: string[];
  annotations: Record<string, string>;
}

/**
 * Merges per-platform digests into one OCI image index and pushes it under every tag.
 *
 * Child manifests must exist in each repository the index is pushed to, so they (and their
 * blobs) are copied or mounted there first, before any tag moves: a tag never points at
 * something half-published. The index itself needs no separate push by digest: every
 * repository gets it with its first tag. Pushing the same bytes again is harmless, which makes
 * a retried publish idempotent.
 */
@Injectable()
export class Publisher {
  private readonly logger = new Logger(Publisher.name);

  constructor(@Inject(REGISTRY) private readonly registry: RegistryClient) {}

  async publish(request: PublishRequest): Promise<{ digest: string; mediaType: string }> {
    const index = assembleImageIndex(request.images, { annotations: request.annotations });
    const tags = request.tags.map((tag) => parseTagReference(tag));
    const repositories = new Map<string, RepositoryRef>();
    for (const tag of tags) repositories.set(`${tag.registry}/${tag.repository}`, tag);

    // Repositories, and the tags after them, in parallel: publish latency is round trips.
    const elsewhere = [...repositories.values()].filter(
      (repository) =>
        repository.registry !== request.source.registry || repository.repository !== request.source.repository,
    );
    await Promise.all(
      elsewhere.flatMap((repository) =>
        request.images.map((image) => this.registry.copyManifest(request.source, image.digest, repository)),
      ),
    );
    await Promise.all(tags.map((tag) => this.registry.putManifest(tag, tag.tag, index.body, index.mediaType)));
    this.logger.log(`published ${index.digest} as ${request.tags.join(', ')}`);
    return { digest: index.digest, mediaType: index.mediaType };
  }
}

export function platformImage(platform: string, digest: string, mediaType: string, size: number): PlatformImage {
  return { platform: parsePlatform(platform), digest, mediaType, size };
}
