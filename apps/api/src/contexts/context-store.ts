import { createHash } from 'node:crypto';
import { Inject, Injectable, Logger } from '@nestjs/common';
import type { ApiConfig } from '@farm/config';
import { MediaTypes, RegistryClient, RegistryError, sha256Digest } from '@farm/oci';
import { ApiError } from '../common/api-error';
import { API_CONFIG } from '../tokens';

/** An uploaded build context as the API shows it. */
export interface ContextView {
  digest: string;
  size: number;
}

/** What an upload request brings: its declared type and length, and its body as a stream. */
export interface ContextUpload {
  contentType: string | undefined;
  contentLength: string | undefined;
  body: AsyncIterable<Uint8Array>;
}

/** The largest context archive the farm takes; larger uploads answer 413 before a byte is read. */
export const MAX_CONTEXT_BYTES = 512 * 1024 * 1024;
const CONTEXT_TYPES = ['application/gzip', 'application/x-gzip', 'application/octet-stream'];
const DIGEST = /^sha256:[0-9a-f]{64}$/;

/**
 * Build contexts uploaded by `farm build --upload`: .tar.gz blobs in the farm's context
 * repository (FARM_CONTEXT_REPOSITORY), addressed by their sha256, which agents fetch by digest.
 * An upload streams from the client through to the registry; the digest the client claims is
 * checked on the way (and by the registry itself), so a mismatching upload stores nothing.
 */
@Injectable()
export class ContextStore {
  private readonly logger = new Logger(ContextStore.name);
  private readonly registry: RegistryClient;

  constructor(@Inject(API_CONFIG) private readonly config: ApiConfig) {
    this.registry = new RegistryClient({
      dockerConfig: config.registryAuth,
      insecureRegistries: config.insecureRegistries,
      userAgent: 'buildfarm-api',
    });
  }

  /** The context with this digest; 404 when it was never uploaded. */
  async describe(digest: string): Promise<ContextView> {
    checkDigest(digest, 'digest');
    const size = await this.sizeOf(digest);
    if (size === null) throw new ApiError('not_found', `context ${digest} was not uploaded`, 'digest');
    return { digest, size };
  }

  /** Fails with 422 unless the context was uploaded: a build must not wait for a blob that never comes. */
  async requireUploaded(digest: string): Promise<void> {
    if ((await this.sizeOf(digest)) === null) {
      throw new ApiError('unprocessable', `context ${digest} was not uploaded (POST /v1/contexts)`, 'contextDigest');
    }
  }

  /**
   * Streams an upload into the context repository under `digest`. An identical context already
   * there is not stored again (the body is still read and checked).
   */
  async upload(digest: string, upload: ContextUpload): Promise<ContextView> {
    checkDigest(digest, 'digest');
    const type = upload.contentType?.split(';')[0].trim().toLowerCase();
    if (!type || !CONTEXT_TYPES.includes(type)) {
      throw new ApiError('invalid_request', `Content-Type must be one of ${CONTEXT_TYPES.join(', ')}`, 'Content-Type');
    }
    const size = Number(upload.contentLength);
    if (upload.contentLength === undefined || !/^\d+$/.test(upload.contentLength) || !Number.isSafeInteger(size)) {
      throw new ApiError(
        'invalid_request',
        'Content-Length is required: send the archive with its length',
        'Content-Length',
      );
    }
    if (size > MAX_CONTEXT_BYTES) {
      throw new ApiError(
        'payload_too_large',
        `a context may have at most ${MAX_CONTEXT_BYTES} bytes, this one has ${size}`,
      );
    }
    if (size === 0) throw new ApiError('invalid_request', 'the context archive is empty');
    const repository = this.repository();

    const check = new UploadCheck(digest, size);
    if ((await this.sizeOf(digest)) !== null) {
      for await (const chunk of check.pass(upload.body)) void chunk;
      check.throwIfBad();
      await this.keep(repository, digest, size);
      return { digest, size };
    }
    let opened = false;
    try {
      await this.registry.uploadBlob(
        repository,
        digest,
        () => {
          // The client's stream can be read once: a registry error after it started is final.
          if (opened) throw new ApiError('unavailable', 'the registry failed during the upload; upload again');
          opened = true;
          return check.pass(upload.body);
        },
        size,
      );
    } catch (error) {
      check.throwIfBad();
      if (error instanceof ApiError) throw error;
      throw this.unavailable(error);
    }
    check.throwIfBad();
    await this.keep(repository, digest, size);
    this.logger.log(`stored context ${digest} (${size} bytes)`);
    return { digest, size };
  }

  /**
   * A blob no manifest references is what registry garbage collection deletes: each context
   * gets a small OCI artifact manifest referencing it, tagged `sha256-<hex>`, so a collection
   * run while its build waits in the queue leaves it. Deleting those tags (by age, with the
   * registry's own retention tools) is how old contexts go.
   */
  private async keep(repository: { registry: string; repository: string }, digest: string, size: number) {
    const manifest = contextManifest(digest, size);
    try {
      await this.registry.uploadBlob(repository, EMPTY_CONFIG.digest, EMPTY_CONFIG_BODY, EMPTY_CONFIG.size);
      await this.registry.putManifest(repository, contextTag(digest), manifest, MediaTypes.ociManifest);
    } catch (error) {
      throw this.unavailable(error);
    }
  }

  private repository(): { registry: string; repository: string } {
    const repository = this.config.contextRepository;
    if (!repository) {
      throw new ApiError('unavailable', 'this farm takes no uploaded contexts: FARM_CONTEXT_REPOSITORY is not set');
    }
    return repository;
  }

  private async sizeOf(digest: string): Promise<number | null> {
    const repository = this.repository();
    try {
      return await this.registry.blobSize(repository, digest);
    } catch (error) {
      throw this.unavailable(error);
    }
  }

  private unavailable(error: unknown): ApiError {
    const registry = this.config.contextRepository?.registry ?? 'the registry';
    if (!(error instanceof RegistryError)) this.logger.error(`context store: ${(error as Error).message}`);
    return new ApiError('unavailable', `the context store at ${registry} is unavailable: ${(error as Error).message}`);
  }
}

/** The empty JSON object, as the OCI image spec's "empty descriptor" for artifacts without config. */
const EMPTY_CONFIG_BODY = Buffer.from('{}');
const EMPTY_CONFIG = {
  mediaType: 'application/vnd.oci.empty.v1+json',
  digest: sha256Digest(EMPTY_CONFIG_BODY),
  size: EMPTY_CONFIG_BODY.length,
};
export const CONTEXT_ARTIFACT_TYPE = 'application/vnd.buildfarm.context.v1.tar+gzip';

/** The tag that keeps a context: `sha256-<hex>` (a tag cannot hold the digest's colon). */
export function contextTag(digest: string): string {
  return digest.replace(':', '-');
}

/** An OCI artifact manifest whose one layer is the context archive. */
function contextManifest(digest: string, size: number): Buffer {
  return Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MediaTypes.ociManifest,
      artifactType: CONTEXT_ARTIFACT_TYPE,
      config: EMPTY_CONFIG,
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest, size }],
    }),
  );
}

function checkDigest(digest: string, field: string): void {
  if (!DIGEST.test(digest))
    throw new ApiError('invalid_request', 'digest must be sha256: and 64 lowercase hex digits', field);
}

/** Hashes and counts an upload as it passes; a bad one fails before its last byte goes on. */
class UploadCheck {
  private readonly hash = createHash('sha256');
  private bytes = 0;
  private problem?: ApiError;

  constructor(
    private readonly digest: string,
    private readonly size: number,
  ) {}

  async *pass(body: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
    for await (const chunk of body) {
      this.bytes += chunk.length;
      if (this.bytes > this.size) {
        this.problem = new ApiError('invalid_request', `the body is longer than its Content-Length (${this.size})`);
      } else {
        this.hash.update(chunk);
        // Decided before the last chunk is passed on: the registry never gets a whole bad blob.
        if (this.bytes === this.size) this.verify();
      }
      this.throwIfBad();
      yield chunk;
    }
    if (this.bytes < this.size) {
      this.problem = new ApiError('invalid_request', `the body ended after ${this.bytes} of ${this.size} bytes`);
    }
    this.throwIfBad();
  }

  /** The 400 for an upload that is not what the client claimed, once that is known. */
  throwIfBad(): void {
    if (this.problem) throw this.problem;
  }

  private verify(): void {
    const actual = `sha256:${this.hash.digest('hex')}`;
    if (actual !== this.digest) {
      this.problem = new ApiError(
        'invalid_request',
        `the upload hashes to ${actual}, not ${this.digest}: nothing was stored`,
        'digest',
      );
    }
  }
}
