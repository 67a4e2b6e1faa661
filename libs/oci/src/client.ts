import { open, readFile } from 'node:fs/promises';
import { Authenticator } from './auth';
import { DigestVerifier, matchesDigest, parseDigest, sha256Digest } from './digest';
import { parseDockerConfig } from './docker-config';
import { RegistryError, errorFromResponse } from './errors';
import { IdleTimer, mapLimit, networkError, readLimited, withRetries } from './http';
import { checkDescriptor, layoutBlobPath, readOciLayoutIndex } from './layout';
import { MANIFEST_ACCEPT, MediaTypes, isImageManifestMediaType, isIndexMediaType } from './media-types';
import { hostname, isDigest, isLoopbackRegistry, isTag, normalizeRegistry, normalizeRepositoryRef } from './reference';
import { pullScope, pushScope } from './scope';
import type { Descriptor, RepositoryRef } from './types';

/** Options of {@link RegistryClient}. */
export interface RegistryClientOptions {
  /**
   * docker `config.json` content, as an object or JSON text:
   * `{auths: {"host[:port]": {auth: base64("user:pass")} | {username, password} | {identitytoken}}}`.
   */
  dockerConfig?: unknown;
  /**
   * Registries reached over plain HTTP (`host[:port]`; a bare host matches every port).
   * Loopback hosts (127.0.0.0/8, localhost, [::1]) are always reached over HTTP, as Docker does.
   */
  insecureRegistries?: string[];
  /** Further attempts after a 429, 5xx, connection error or timeout (default 3). */
  retries?: number;
  /** Abort a request after this long without progress: no answer and no body bytes moving (default 30 s). */
  timeoutMs?: number;
  /** Blobs and child manifests transferred in parallel by copies and pushes (default 4). */
  concurrency?: number;
  userAgent?: string;
}

/**
 * Blob content: a buffer, or a function opening a fresh stream (called again for each attempt,
 * so it may be retried).
 */
export type BlobSource = Buffer | (() => AsyncIterable<Uint8Array> | Promise<AsyncIterable<Uint8Array>>);

/** Where the manifests and blobs of a copy come from. */
interface ContentSource {
  readManifest(digest: string): Promise<{ body: Buffer; mediaType?: string }>;
  openBlob(digest: string): Promise<AsyncIterable<Uint8Array>>;
  /** Repositories of the target registry that may already hold the blobs. */
  mountFrom: string[];
}

interface HttpRequest {
  method: 'GET' | 'HEAD' | 'PUT' | 'POST' | 'DELETE';
  url: URL;
  registry: string;
  scopes: string[];
  headers?: Record<string, string>;
  body?: BlobSource;
  /** Size and digest of `body`, verified while a stream body is sent. */
  size?: number;
  digest?: string;
  /** Statuses the caller handles; any other becomes a RegistryError. */
  ok: number[];
}

interface HttpAnswer<B> {
  status: number;
  headers: Headers;
  body: B;
}

const EMPTY = Buffer.alloc(0);

/**
 * A client of the OCI distribution API (v2): manifests, blobs, cross-repository mounts,
 * registry-to-registry copies and pushes of OCI image layouts. Authenticates anonymously, with
 * Basic credentials or bearer tokens as each registry asks; retries 429/5xx/connection errors.
 * All references are verified against their sha256 digests.
 */
/** After a manifest PUT refused with DIGEST_INVALID for content known to match (see putManifest). */
const MANIFEST_RETRY_DELAY_MS = 200;

export class RegistryClient {
  readonly #auth: Authenticator;
  private readonly insecure: Set<string>;
  private readonly retries: number;
  private readonly timeoutMs: number;
  private readonly concurrency: number;
  private readonly userAgent: string;
  /**
   * Blob uploads in flight, by `<registry>/<repository>@<digest>`: pushes through this client
   * that need the same blob in the same repository share one upload. Two concurrent uploads of a
   * blob make distribution rewrite its repository link while another request may read it, and a
   * manifest PUT checked at that moment is refused (DIGEST_INVALID).
   */
  private readonly uploading = new Map<string, Promise<void>>();

  constructor(options: RegistryClientOptions = {}) {
    this.insecure = new Set((options.insecureRegistries ?? []).map(normalizeRegistry));
    this.retries = Math.max(0, Math.floor(options.retries ?? 3));
    this.timeoutMs = options.timeoutMs ?? 30_000;
    if (!(this.timeoutMs > 0)) throw new Error('timeoutMs must be a positive number');
    this.concurrency = Math.max(1, options.concurrency ?? 4);
    this.userAgent = options.userAgent ?? 'buildfarm-oci/1';
    this.#auth = new Authenticator({
      credentials: parseDockerConfig(options.dockerConfig),
      timeoutMs: this.timeoutMs,
      userAgent: this.userAgent,
      allowsHttp: (host) => this.allowsHttp(host),
    });
  }

  /** Checks that `registry` answers the v2 API and accepts our credentials (`GET /v2/`). */
  async ping(registry: string): Promise<void> {
    const host = normalizeRegistry(registry);
    await this.send({ method: 'GET', url: this.url(host, '/v2/'), registry: host, scopes: [], ok: [200] });
  }

  /** Descriptor of a manifest by tag or digest, or null when the repository has no such manifest. */
  async headManifest(repo: RepositoryRef, reference: string): Promise<Descriptor | null> {
    const ref = normalizeRepositoryRef(repo);
    checkReference(reference);
    const res = await this.send({
      method: 'HEAD',
      url: this.url(ref.registry, `/v2/${ref.repository}/manifests/${reference}`),
      registry: ref.registry,
      scopes: [pullScope(ref.repository)],
      headers: { accept: MANIFEST_ACCEPT },
      ok: [200, 404],
    });
    if (res.status === 404) return null;
    const digest = res.headers.get('docker-content-digest');
    const size = Number(res.headers.get('content-length'));
    const mediaType = contentType(res.headers);
    if (digest && isDigest(reference) && digest !== reference) {
      throw new RegistryError(`${describe(ref, reference)}: registry answered for digest ${digest}`);
    }
    // Without these headers a HEAD tells nothing reliable: fetch and hash the manifest instead.
    if (!digest || !mediaType || !Number.isSafeInteger(size) || !res.headers.has('content-length')) {
      return (await this.getManifest(ref, reference)).descriptor;
    }
    return { mediaType, digest, size };
  }

  /** A manifest by tag or digest, verified against its digest. */
  async getManifest(repo: RepositoryRef, reference: string): Promise<{ descriptor: Descriptor; body: Buffer }> {
    const ref = normalizeRepositoryRef(repo);
    checkReference(reference);
    const res = await this.send({
      method: 'GET',
      url: this.url(ref.registry, `/v2/${ref.repository}/manifests/${reference}`),
      registry: ref.registry,
      scopes: [pullScope(ref.repository)],
      headers: { accept: MANIFEST_ACCEPT },
      ok: [200],
    });
    const body = res.body;
    let digest: string;
    if (isDigest(reference)) {
      if (!matchesDigest(body, reference)) {
        throw new RegistryError(`${describe(ref, reference)}: manifest content does not match its digest`);
      }
      digest = reference;
    } else {
      digest = sha256Digest(body);
      const claimed = res.headers.get('docker-content-digest');
      if (claimed?.startsWith('sha256:') && claimed !== digest) {
        throw new RegistryError(`${describe(ref, reference)}: manifest content does not match ${claimed}`);
      }
    }
    const mediaType = contentType(res.headers) ?? manifestMediaType(body);
    if (!mediaType) throw new RegistryError(`${describe(ref, reference)}: manifest has no media type`);
    return { descriptor: { mediaType, digest, size: body.length }, body };
  }

  /**
   * Stores a manifest (image manifest or index) under a tag or its digest. The registry
   * refuses it when a referenced blob or child manifest is missing from the repository.
   */
  async putManifest(repo: RepositoryRef, reference: string, body: Buffer, mediaType: string): Promise<Descriptor> {
    const ref = normalizeRepositoryRef(repo);
    checkReference(reference);
    if (isDigest(reference) && !matchesDigest(body, reference)) {
      throw new Error(`${describe(ref, reference)}: manifest content does not match the digest it is pushed under`);
    }
    const digest = isDigest(reference) ? reference : sha256Digest(body);
    const put = () =>
      this.send({
        method: 'PUT',
        url: this.url(ref.registry, `/v2/${ref.repository}/manifests/${reference}`),
        registry: ref.registry,
        scopes: [pushScope(ref.repository)],
        headers: { 'content-type': mediaType },
        body,
        ok: [201],
      });
    const res = await put().catch(async (error: unknown) => {
      // The body's digest is known right: a DIGEST_INVALID is distribution reading a blob link
      // that a concurrent upload of the same blob (another agent's) was rewriting. Once more.
      if (!(error instanceof RegistryError) || error.code !== 'DIGEST_INVALID') throw error;
      await new Promise((resolve) => setTimeout(resolve, MANIFEST_RETRY_DELAY_MS));
      return put();
    });
    const stored = res.headers.get('docker-content-digest');
    if (stored && stored !== digest && stored !== sha256Digest(body)) {
      throw new RegistryError(
        `${describe(ref, reference)}: registry stored the manifest as ${stored}, expected ${digest}`,
      );
    }
    return { mediaType, digest, size: body.length };
  }

  /** True when the repository holds the blob. */
  async hasBlob(repo: RepositoryRef, digest: string): Promise<boolean> {
    return (await this.headBlob(repo, digest)).res.status === 200;
  }

  /** The size of a blob the repository holds, or null when it does not hold it. */
  async blobSize(repo: RepositoryRef, digest: string): Promise<number | null> {
    const { ref, res } = await this.headBlob(repo, digest);
    if (res.status === 404) return null;
    const size = Number(res.headers.get('content-length'));
    if (!res.headers.has('content-length') || !Number.isSafeInteger(size)) {
      throw new RegistryError(`${describe(ref, digest)}: registry answered without the blob's size`);
    }
    return size;
  }

  /** `HEAD` of a blob: 200 when the repository holds it, 404 when not. */
  private async headBlob(repo: RepositoryRef, digest: string) {
    const ref = normalizeRepositoryRef(repo);
    parseDigest(digest);
    const res = await this.send({
      method: 'HEAD',
      url: this.url(ref.registry, `/v2/${ref.repository}/blobs/${digest}`),
      registry: ref.registry,
      scopes: [pullScope(ref.repository)],
      ok: [200, 404],
    });
    return { ref, res };
  }

  /**
   * A blob's content as a stream, for blobs too large to hold in memory. The digest is verified
   * as it streams: the stream fails at its end, before finishing, when the content does not match.
   */
  async readBlobStream(repo: RepositoryRef, digest: string): Promise<AsyncIterable<Uint8Array>> {
    const ref = normalizeRepositoryRef(repo);
    parseDigest(digest);
    const body = await withRetries(this.retries, () => this.openBlob(ref, digest));
    return verifiedStream(body, digest, describe(ref, digest));
  }

  /** A blob's content, verified against its digest. Meant for small blobs such as image configs. */
  async getBlob(repo: RepositoryRef, digest: string): Promise<Buffer> {
    const ref = normalizeRepositoryRef(repo);
    parseDigest(digest);
    const res = await this.send({
      method: 'GET',
      url: this.url(ref.registry, `/v2/${ref.repository}/blobs/${digest}`),
      registry: ref.registry,
      scopes: [pullScope(ref.repository)],
      ok: [200],
    });
    if (!matchesDigest(res.body, digest)) {
      throw new RegistryError(`${describe(ref, digest)}: blob content does not match its digest`);
    }
    return res.body;
  }

  /**
   * Links a blob of `fromRepository` (same registry) into `repo` without transferring it.
   * Returns false when the registry could not mount it (it answered by starting an upload,
   * which is cancelled).
   */
  async mountBlob(repo: RepositoryRef, digest: string, fromRepository: string): Promise<boolean> {
    const ref = normalizeRepositoryRef(repo);
    const mounted = await this.mountOrStartUpload(ref, digest, fromRepository);
    if (mounted === true) return true;
    await this.cancelUpload(ref, mounted);
    return false;
  }

  /**
   * `POST ...?mount=&from=`: true when the blob was mounted; otherwise the registry opened an
   * upload session instead (202) and its location is returned, for the upload to use.
   */
  private async mountOrStartUpload(ref: RepositoryRef, digest: string, fromRepository: string) {
    const from = normalizeRepositoryRef({ registry: ref.registry, repository: fromRepository }).repository;
    parseDigest(digest);
    const url = this.url(ref.registry, `/v2/${ref.repository}/blobs/uploads/`);
    url.searchParams.set('mount', digest);
    url.searchParams.set('from', from);
    const res = await this.send({
      method: 'POST',
      url,
      registry: ref.registry,
      scopes: [pushScope(ref.repository), pullScope(from)],
      ok: [201, 202],
    });
    return res.status === 201 ? true : res.headers.get('location');
  }

  /**
   * Uploads a blob in one request (POST then PUT), unless the repository already has it.
   * The content is checked against `digest` and `size` as it is sent.
   */
  async uploadBlob(repo: RepositoryRef, digest: string, data: BlobSource, size: number): Promise<void> {
    const ref = normalizeRepositoryRef(repo);
    parseDigest(digest);
    if (Buffer.isBuffer(data) && (data.length !== size || !matchesDigest(data, digest))) {
      throw new Error(`blob for ${describe(ref, digest)} does not match its digest or size`);
    }
    if (await this.hasBlob(ref, digest)) return;
    await this.putBlob(ref, digest, data, size);
  }

  /**
   * Makes manifest `digest` (image manifest or index, with its child manifests and all blobs)
   * exist in `to`. Skips what `to` already has, mounts blobs within one registry, and streams
   * them across registries. Returns the manifest's descriptor in `to`.
   */
  async copyManifest(from: RepositoryRef, digest: string, to: RepositoryRef): Promise<Descriptor> {
    const source = normalizeRepositoryRef(from);
    const target = normalizeRepositoryRef(to);
    parseDigest(digest);
    const content: ContentSource = {
      readManifest: async (d) => {
        const { descriptor, body } = await this.getManifest(source, d);
        return { body, mediaType: descriptor.mediaType };
      },
      openBlob: (d) => this.openBlob(source, d),
      mountFrom: source.registry === target.registry ? [source.repository] : [],
    };
    return this.pushTree(content, digest, target, undefined);
  }

  /**
   * Pushes the single image (or index) of an OCI image layout directory, as written by
   * `buildah push IMG oci:DIR`, to `to` by digest (no tag): blobs first, skipping those present
   * and mounting from `mountFrom` repositories of the same registry when they have them, then
   * the manifest. Returns the manifest's descriptor.
   */
  async pushOciLayout(
    layoutDir: string,
    to: RepositoryRef,
    options: { mountFrom?: string[] } = {},
  ): Promise<Descriptor> {
    const target = normalizeRepositoryRef(to);
    const mountFrom = (options.mountFrom ?? []).map(
      (repository) => normalizeRepositoryRef({ registry: target.registry, repository }).repository,
    );
    const manifests = await readOciLayoutIndex(layoutDir);
    if (manifests.length !== 1) {
      throw new Error(`${layoutDir}/index.json lists ${manifests.length} manifests; expected exactly one`);
    }
    const content: ContentSource = {
      readManifest: async (d) => {
        const body = await readFile(layoutBlobPath(layoutDir, d));
        if (!matchesDigest(body, d)) throw new Error(`${layoutDir}: manifest ${d} does not match its digest`);
        return { body };
      },
      openBlob: (d) => openLayoutBlob(layoutBlobPath(layoutDir, d)),
      mountFrom,
    };
    return this.pushTree(content, manifests[0].digest, target, manifests[0].mediaType);
  }

  /**
   * Pushes manifest `digest` and what it references. The manifest's HEAD and its blobs' HEADs go
   * out together (one round trip instead of two before the first upload); a blob a mount source
   * lacks is uploaded through the session the failed mount opened.
   */
  private async pushTree(
    source: ContentSource,
    digest: string,
    to: RepositoryRef,
    mediaTypeHint: string | undefined,
  ): Promise<Descriptor> {
    const existing = this.headManifest(to, digest);
    // Settled here too, so that a rejection while the manifest is read is not left unhandled.
    existing.catch(() => undefined);
    const { body, mediaType: sourceType } = await source.readManifest(digest);
    const manifest = parseManifestJson(body, digest);
    const mediaType = sourceType ?? manifest.mediaType ?? mediaTypeHint;
    if (mediaType && isIndexMediaType(mediaType)) {
      const found = await existing;
      if (found) return found;
      const children = (manifest.manifests ?? []).map((c, i) => checkDescriptor(c, `${digest} manifests[${i}]`));
      await mapLimit(children, this.concurrency, (child) => this.pushTree(source, child.digest, to, child.mediaType));
    } else if (mediaType && isImageManifestMediaType(mediaType)) {
      const descriptors = [manifest.config, ...(manifest.layers ?? [])].map((d, i) =>
        checkDescriptor(d, `${digest} ${i === 0 ? 'config' : `layers[${i - 1}]`}`),
      );
      // Foreign layers are fetched by clients from their URLs; registries do not hold them.
      const needed = descriptors.filter((d) => !(d.mediaType === MediaTypes.dockerForeignLayer && d.urls?.length));
      const [found, present] = await Promise.all([
        existing,
        mapLimit(needed, this.concurrency, (blob) => this.hasBlob(to, blob.digest)),
      ]);
      if (found) return found;
      await mapLimit(
        needed.filter((_, i) => !present[i]),
        this.concurrency,
        (blob) => {
          const key = `${to.registry}/${to.repository}@${blob.digest}`;
          let pending = this.uploading.get(key);
          if (!pending) {
            pending = this.transferBlob(source, blob, to).finally(() => this.uploading.delete(key));
            this.uploading.set(key, pending);
          }
          return pending;
        },
      );
    } else {
      await existing;
      throw new Error(`manifest ${digest} has unsupported media type ${mediaType ?? '(none)'}`);
    }
    return this.putManifest(to, digest, body, mediaType);
  }

  /** A blob `to` lacks: mounted from a source repository that has it, else uploaded. */
  private async transferBlob(source: ContentSource, blob: Descriptor, to: RepositoryRef): Promise<void> {
    let session: string | null = null;
    for (const from of source.mountFrom) {
      if (from === to.repository) continue;
      const mounted = await this.mountOrStartUpload(to, blob.digest, from);
      if (mounted === true) return;
      // Only the last session is used; the others are dropped (the registry purges them anyway).
      if (session) void this.cancelUpload(to, session);
      session = mounted;
    }
    await this.putBlob(to, blob.digest, () => source.openBlob(blob.digest), blob.size, session);
  }

  /**
   * Monolithic upload; POST and PUT are retried together since a failed PUT spoils the session.
   * `session`: an upload already opened (by a mount the registry could not do), for the first try.
   */
  private async putBlob(
    ref: RepositoryRef,
    digest: string,
    data: BlobSource,
    size: number,
    session: string | null = null,
  ): Promise<void> {
    const scopes = [pushScope(ref.repository)];
    let opened = session;
    await withRetries(this.retries, async () => {
      const given = opened;
      opened = null;
      const started = given
        ? null
        : await this.sendOnce(
            {
              method: 'POST',
              url: this.url(ref.registry, `/v2/${ref.repository}/blobs/uploads/`),
              registry: ref.registry,
              scopes,
              ok: [202],
            },
            false,
          );
      const location = this.uploadLocation(ref, given ?? started?.headers.get('location') ?? null);
      location.searchParams.set('digest', digest);
      const done = await this.sendOnce(
        {
          method: 'PUT',
          url: location,
          registry: ref.registry,
          scopes,
          headers: { 'content-type': 'application/octet-stream' },
          body: data,
          size,
          digest,
          ok: [201, 204],
        },
        false,
      );
      const stored = done.headers.get('docker-content-digest');
      if (stored && stored !== digest) {
        throw new RegistryError(`${describe(ref, digest)}: registry stored the blob as ${stored}`);
      }
    });
  }

  private async cancelUpload(ref: RepositoryRef, location: string | null): Promise<void> {
    try {
      await this.sendOnce(
        {
          method: 'DELETE',
          url: this.uploadLocation(ref, location),
          registry: ref.registry,
          scopes: [pushScope(ref.repository)],
          ok: [204, 404],
        },
        false,
      );
    } catch {
      // Best effort: the registry purges abandoned uploads by itself.
    }
  }

  private async openBlob(ref: RepositoryRef, digest: string): Promise<AsyncIterable<Uint8Array>> {
    const res = await this.sendOnce(
      {
        method: 'GET',
        url: this.url(ref.registry, `/v2/${ref.repository}/blobs/${digest}`),
        registry: ref.registry,
        scopes: [pullScope(ref.repository)],
        ok: [200],
      },
      true,
    );
    return res.body;
  }

  private uploadLocation(ref: RepositoryRef, location: string | null): URL {
    if (!location) throw new RegistryError(`${describe(ref)}: upload answer has no Location`);
    return new URL(location, this.url(ref.registry, '/'));
  }

  private allowsHttp(host: string): boolean {
    const normalized = normalizeRegistry(host);
    return isLoopbackRegistry(normalized) || this.insecure.has(normalized) || this.insecure.has(hostname(normalized));
  }

  private url(registry: string, path: string): URL {
    return new URL(`${this.allowsHttp(registry) ? 'http' : 'https'}://${registry}${path}`);
  }

  private send(req: HttpRequest): Promise<HttpAnswer<Buffer>> {
    return withRetries(this.retries, () => this.sendOnce(req, false));
  }

  /**
   * One HTTP exchange, answering an authentication challenge once. With `stream` the body of
   * an accepted answer is handed over as a stream that keeps the idle timer running.
   */
  private sendOnce(req: HttpRequest, stream: false): Promise<HttpAnswer<Buffer>>;
  private sendOnce(req: HttpRequest, stream: true): Promise<HttpAnswer<AsyncIterable<Uint8Array>>>;
  private async sendOnce(
    req: HttpRequest,
    stream: boolean,
  ): Promise<HttpAnswer<Buffer> | HttpAnswer<AsyncIterable<Uint8Array>>> {
    const what = `${req.method} ${req.url.origin}${req.url.pathname}`;
    // Credentials go only to the registry itself, never to another origin an upload points at.
    const ownHost = req.url.origin === this.url(req.registry, '/').origin;
    for (let challenged = false; ; challenged = true) {
      const authorization = ownHost ? await this.#auth.authorization(req.registry, req.scopes) : undefined;
      const timer = new IdleTimer(this.timeoutMs);
      const res = await this.fetchOnce(req, what, authorization, timer);

      if (req.ok.includes(res.status)) {
        if (stream)
          return { status: res.status, headers: res.headers, body: timedBody(res, timer, what, this.timeoutMs) };
        try {
          const body = req.method === 'HEAD' || !res.body ? EMPTY : Buffer.from(await res.arrayBuffer());
          return { status: res.status, headers: res.headers, body };
        } catch (err) {
          throw networkError(what, err, timer, this.timeoutMs);
        } finally {
          timer.stop();
        }
      }

      const text = req.method === 'HEAD' ? '' : await readLimited(res, timer);
      timer.stop();
      if (res.status === 401 && ownHost && !challenged) {
        const header = res.headers.get('www-authenticate');
        if (await this.#auth.challenged(req.registry, header, req.scopes, authorization)) continue;
      }
      const refused = res.status === 401 || res.status === 403;
      throw errorFromResponse(what, res.status, res.headers, text, refused ? this.#auth.hint(req.registry) : undefined);
    }
  }

  private async fetchOnce(
    req: HttpRequest,
    what: string,
    authorization: string | undefined,
    timer: IdleTimer,
  ): Promise<Response> {
    const headers: Record<string, string> = { 'user-agent': this.userAgent, ...req.headers };
    if (authorization) headers.authorization = authorization;
    const failure: { error?: unknown } = {};
    let body: Buffer | AsyncIterable<Uint8Array> | undefined;
    let source: AsyncIterable<Uint8Array> | undefined;
    try {
      if (Buffer.isBuffer(req.body)) {
        body = req.body;
      } else if (req.body) {
        source = await req.body();
        body = verifiedBody(source, req, timer, failure);
        if (req.size !== undefined) headers['content-length'] = String(req.size);
      }
      return await fetch(req.url, {
        method: req.method,
        headers,
        body,
        signal: timer.signal,
        ...(body && !Buffer.isBuffer(body) && { duplex: 'half' }),
      } as RequestInit);
    } catch (err) {
      timer.stop();
      // A source that failed mid-stream (bad digest, unreadable file, source registry error) says more.
      if (failure.error !== undefined) throw failure.error;
      if (!isFetchFailure(err) && !timer.timedOut) throw err;
      throw networkError(what, err, timer, this.timeoutMs);
    } finally {
      // An upload answered before its body was read (an error status, a dropped connection)
      // leaves its source open: a file stream would keep its descriptor until collected.
      (source as { destroy?: () => void } | undefined)?.destroy?.();
    }
  }
}

/**
 * A blob of an OCI layout as a stream, its file opened before the stream is handed over: a
 * missing file rejects here (the upload fails, retryable or not), instead of surfacing later as
 * an 'error' event of a stream nobody reads yet, which would end the process.
 */
async function openLayoutBlob(path: string): Promise<AsyncIterable<Uint8Array>> {
  const file = await open(path, 'r');
  return file.createReadStream();
}

/** Streams `source` into a request, checking size and digest, keeping the request's timer alive. */
async function* verifiedBody(
  source: AsyncIterable<Uint8Array>,
  req: HttpRequest,
  timer: IdleTimer,
  failure: { error?: unknown },
): AsyncIterable<Uint8Array> {
  const verifier = req.digest ? new DigestVerifier(req.digest) : undefined;
  try {
    for await (const chunk of source) {
      verifier?.update(chunk);
      timer.touch();
      yield chunk;
    }
    if (verifier && req.size !== undefined && verifier.bytes !== req.size) {
      throw new Error(`blob ${req.digest}: source has ${verifier.bytes} bytes, expected ${req.size}`);
    }
    const actual = verifier?.digest();
    if (verifier && actual !== req.digest) throw new Error(`blob ${req.digest}: source content hashes to ${actual}`);
  } catch (err) {
    failure.error = err;
    throw err;
  }
}

/** Passes `source` through, failing at its end when it does not hash to `digest`. */
async function* verifiedStream(
  source: AsyncIterable<Uint8Array>,
  digest: string,
  what: string,
): AsyncIterable<Uint8Array> {
  const verifier = new DigestVerifier(digest);
  for await (const chunk of source) {
    verifier.update(chunk);
    yield chunk;
  }
  const actual = verifier.digest();
  if (actual !== digest) throw new RegistryError(`${what}: blob content hashes to ${actual}`);
}

/** The body of an accepted answer as a stream; the idle timer runs until it is consumed or dropped. */
async function* timedBody(res: Response, timer: IdleTimer, what: string, timeoutMs: number): AsyncIterable<Uint8Array> {
  try {
    if (!res.body) return;
    for await (const chunk of res.body) {
      timer.touch();
      yield chunk;
    }
  } catch (err) {
    throw networkError(what, err, timer, timeoutMs);
  } finally {
    timer.stop();
  }
}

/**
 * Whether `fetch` failed to get an answer (connection refused or reset, DNS, TLS) rather than
 * being called wrongly. Checked by shape: fetch's errors come from another realm under jest's vm.
 */
function isFetchFailure(err: unknown): boolean {
  const e = err as { name?: unknown; message?: unknown } | null;
  return typeof e === 'object' && e !== null && e.name === 'TypeError' && e.message === 'fetch failed';
}

function checkReference(reference: string): void {
  if (isDigest(reference)) parseDigest(reference);
  else if (!isTag(reference)) throw new Error(`invalid tag or digest "${reference}"`);
}

function contentType(headers: Headers): string | undefined {
  const value = headers.get('content-type')?.split(';')[0].trim();
  return value || undefined;
}

function describe(ref: RepositoryRef, reference?: string): string {
  const at = reference === undefined ? '' : isDigest(reference) ? `@${reference}` : `:${reference}`;
  return `${ref.registry}/${ref.repository}${at}`;
}

interface ManifestJson {
  mediaType?: string;
  manifests?: unknown[];
  config?: unknown;
  layers?: unknown[];
}

function parseManifestJson(body: Buffer, digest: string): ManifestJson {
  try {
    const parsed: unknown = JSON.parse(body.toString('utf8'));
    if (typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)) return parsed as ManifestJson;
  } catch {
    // reported below
  }
  throw new Error(`manifest ${digest} is not a JSON object`);
}

function manifestMediaType(body: Buffer): string | undefined {
  try {
    const mediaType = (JSON.parse(body.toString('utf8')) as ManifestJson).mediaType;
    return typeof mediaType === 'string' ? mediaType : undefined;
  } catch {
    return undefined;
  }
}
