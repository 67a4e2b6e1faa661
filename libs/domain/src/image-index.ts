import { digestProblem, sha256Digest } from './digest';
import { formatPlatform, InvalidPlatformError, normalizePlatform, Platform } from './platform';
import { quote } from './quote';

export const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
export const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
export const DOCKER_MANIFEST_LIST = 'application/vnd.docker.distribution.manifest.list.v2+json';
export const DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json';

/** One platform's image, already pushed by digest to the repository the index goes to. */
export interface PlatformImage {
  platform: Platform;
  /** Digest of the platform's manifest, e.g. "sha256:…". */
  digest: string;
  /** The manifest's own media type: {@link OCI_MANIFEST} or {@link DOCKER_MANIFEST}. */
  mediaType: string;
  /** The manifest's size in bytes. */
  size: number;
}

export interface AssembleImageIndexOptions {
  /** 'oci' (default): an OCI image index; 'docker': a Docker manifest list. */
  format?: 'oci' | 'docker';
  /** Index-level annotations (OCI only), e.g. org.opencontainers.image.revision; written sorted by key. */
  annotations?: Record<string, string>;
}

/** The exact bytes to PUT as the index manifest, with their digest and size. */
export interface AssembledImageIndex {
  mediaType: string;
  body: Buffer;
  digest: string;
  size: number;
}

/** Input that cannot become an image index, with a message naming the bad entry. */
export class InvalidImageIndexError extends Error {
  override name = 'InvalidImageIndexError';
}

// Which child manifests each index format may list. An OCI index may point at Docker v2
// manifests (registries and runtimes accept it); a Docker list cannot point at OCI manifests.
const CHILD_MEDIA_TYPES: Record<'oci' | 'docker', readonly string[]> = {
  oci: [OCI_MANIFEST, DOCKER_MANIFEST],
  docker: [DOCKER_MANIFEST],
};

/**
 * Assemble an OCI image index (or a Docker manifest list with `format: 'docker'`): one entry per
 * image, in the given order, each with the child's mediaType, digest, size and normalized
 * `platform.{architecture, os, variant?}`.
 *
 * Deterministic: the same input gives the same bytes and digest, so re-publishing after a retry
 * is a no-op for the registry. Field order follows the Go structs of the OCI and distribution
 * specs; JSON is compact.
 *
 * @throws InvalidImageIndexError for no images, duplicate platforms (after normalization),
 *   invalid platforms, malformed digests, sizes that are not positive integers, child media types
 *   the format cannot hold, or annotations that are not strings (or given for a Docker list).
 */
export function assembleImageIndex(images: PlatformImage[], opts: AssembleImageIndexOptions = {}): AssembledImageIndex {
  const format = opts.format ?? 'oci';
  if (format !== 'oci' && format !== 'docker') {
    throw new InvalidImageIndexError(`unknown index format ${quote(String(format))}: expected "oci" or "docker"`);
  }
  if (!Array.isArray(images) || images.length === 0) {
    throw new InvalidImageIndexError('an image index needs at least one platform image');
  }

  const firstIndexOf = new Map<string, number>();
  const manifests = images.map((image, i) => {
    const where = `images[${i}]`;
    let platform: Platform;
    try {
      platform = normalizePlatform(image.platform);
    } catch (e) {
      if (e instanceof InvalidPlatformError) throw new InvalidImageIndexError(`${where}: ${e.message}`);
      throw e;
    }
    const key = formatPlatform(platform);
    const first = firstIndexOf.get(key);
    if (first !== undefined) {
      throw new InvalidImageIndexError(`${where}: duplicate platform ${key} (already images[${first}])`);
    }
    firstIndexOf.set(key, i);

    const problem = digestProblem(image.digest);
    if (problem) throw new InvalidImageIndexError(`${where} (${key}): ${problem}`);
    if (!Number.isSafeInteger(image.size) || image.size <= 0) {
      throw new InvalidImageIndexError(`${where} (${key}): size must be a positive integer, got ${String(image.size)}`);
    }
    if (!CHILD_MEDIA_TYPES[format].includes(image.mediaType)) {
      throw new InvalidImageIndexError(
        `${where} (${key}): a ${format === 'oci' ? 'OCI image index' : 'Docker manifest list'} cannot list ` +
          `a manifest of media type ${quote(String(image.mediaType))}; allowed: ${CHILD_MEDIA_TYPES[format].join(', ')}` +
          (format === 'docker' && image.mediaType === OCI_MANIFEST
            ? ' (push the images in Docker format, or assemble an OCI index)'
            : ''),
      );
    }

    const platformJson: { architecture: string; os: string; variant?: string } = {
      architecture: platform.architecture,
      os: platform.os,
    };
    if (platform.variant) platformJson.variant = platform.variant;
    // OCI descriptors put digest before size; distribution's Descriptor puts size first.
    return format === 'oci'
      ? { mediaType: image.mediaType, digest: image.digest, size: image.size, platform: platformJson }
      : { mediaType: image.mediaType, size: image.size, digest: image.digest, platform: platformJson };
  });

  const annotations = checkAnnotations(opts.annotations, format);
  const mediaType = format === 'oci' ? OCI_INDEX : DOCKER_MANIFEST_LIST;
  const head = JSON.stringify({ schemaVersion: 2, mediaType, manifests });
  // Annotations are serialized by hand: a JS object would put integer-like keys first, not sorted.
  const json = annotations.length
    ? `${head.slice(0, -1)},"annotations":{${annotations.map(([k, v]) => `${JSON.stringify(k)}:${JSON.stringify(v)}`).join(',')}}}`
    : head;
  const body = Buffer.from(json, 'utf8');
  return { mediaType, body, digest: sha256Digest(body), size: body.length };
}

function checkAnnotations(
  annotations: Record<string, string> | undefined,
  format: 'oci' | 'docker',
): [string, string][] {
  if (annotations === undefined) return [];
  if (typeof annotations !== 'object' || annotations === null || Array.isArray(annotations)) {
    throw new InvalidImageIndexError('annotations must be an object of strings');
  }
  const entries = Object.entries(annotations);
  if (entries.length === 0) return [];
  if (format === 'docker') {
    throw new InvalidImageIndexError('a Docker manifest list has no annotations; assemble an OCI index to annotate it');
  }
  for (const [key, value] of entries) {
    if (key === '') throw new InvalidImageIndexError('annotation keys must not be empty');
    if (typeof value !== 'string') {
      throw new InvalidImageIndexError(`annotation ${quote(key)} must be a string, got ${typeof value}`);
    }
  }
  // Code-unit order, which for the ASCII keys annotations use is Go's byte order.
  return entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}
