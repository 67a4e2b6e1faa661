import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { type IncomingMessage, type Server, type ServerResponse, createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { inspect, promisify } from 'node:util';
import {
  type Descriptor,
  labelOciLayoutImage,
  MediaTypes,
  readOciLayoutIndex,
  RegistryClient,
  RegistryError,
  type RepositoryRef,
  sha256Digest,
} from '@farm/oci';
import { type TestRegistry, startRegistry } from '../helpers/registry';
import { isManifestPut, startRegistryFaultProxy } from '../helpers/registry-fault-proxy';
import { type ProxiedRequest, startRegistryProxy } from '../helpers/registry-proxy';

const execFileAsync = promisify(execFile);
jest.setTimeout(60_000);

/** A small synthetic image: one random layer, a config naming its platform, an OCI manifest. */
interface TestImage {
  layer: Buffer;
  config: Buffer;
  manifest: Buffer;
  descriptor: Descriptor;
}

function makeImage(architecture: string, os = 'linux', layer = randomBytes(2048)): TestImage {
  const config = Buffer.from(
    JSON.stringify({ architecture, os, rootfs: { type: 'layers', diff_ids: [sha256Digest(layer)] }, config: {} }),
  );
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MediaTypes.ociManifest,
      config: {
        mediaType: 'application/vnd.oci.image.config.v1+json',
        digest: sha256Digest(config),
        size: config.length,
      },
      layers: [
        { mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: sha256Digest(layer), size: layer.length },
      ],
    }),
  );
  return {
    layer,
    config,
    manifest,
    descriptor: {
      mediaType: MediaTypes.ociManifest,
      digest: sha256Digest(manifest),
      size: manifest.length,
      platform: { architecture, os },
    },
  };
}

async function pushImage(client: RegistryClient, repo: RepositoryRef, image: TestImage): Promise<Descriptor> {
  await client.uploadBlob(repo, sha256Digest(image.layer), image.layer, image.layer.length);
  await client.uploadBlob(repo, sha256Digest(image.config), image.config, image.config.length);
  return client.putManifest(repo, image.descriptor.digest, image.manifest, MediaTypes.ociManifest);
}

function makeIndex(children: Descriptor[]): Buffer {
  return Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaTypes.ociIndex, manifests: children }));
}

/** `skopeo inspect --raw`: what a real client reads from the registry. */
async function skopeoRaw(reference: string, creds?: { username: string; password: string }): Promise<Buffer> {
  const args = ['inspect', '--raw', '--tls-verify=false'];
  if (creds) args.push('--creds', `${creds.username}:${creds.password}`);
  const { stdout } = await execFileAsync('skopeo', [...args, `docker://${reference}`], { encoding: 'buffer' });
  return stdout;
}

let repoCounter = 0;
function repoIn(registry: TestRegistry, name = 'app'): RepositoryRef {
  return { registry: registry.host, repository: `team/${name}-${process.pid}-${++repoCounter}` };
}

describe('RegistryClient, anonymous registries', () => {
  let a: TestRegistry;
  let b: TestRegistry;
  const client = new RegistryClient();

  beforeAll(async () => {
    [a, b] = await Promise.all([startRegistry(), startRegistry()]);
  });
  afterAll(async () => {
    await Promise.all([a?.stop(), b?.stop()]);
  });

  it('pings the registry', async () => {
    await expect(client.ping(a.host)).resolves.toBeUndefined();
  });

  it('pushes blobs and a manifest, then reads it back by tag and digest', async () => {
    const repo = repoIn(a);
    const image = makeImage('amd64');
    const layerDigest = sha256Digest(image.layer);
    expect(await client.hasBlob(repo, layerDigest)).toBe(false);
    await pushImage(client, repo, image);
    expect(await client.hasBlob(repo, layerDigest)).toBe(true);
    expect(await client.getBlob(repo, layerDigest)).toEqual(image.layer);

    const pushed = await client.putManifest(repo, 'v1', image.manifest, MediaTypes.ociManifest);
    const expected = {
      mediaType: MediaTypes.ociManifest,
      digest: image.descriptor.digest,
      size: image.manifest.length,
    };
    expect(pushed).toEqual(expected);
    expect(await client.headManifest(repo, 'v1')).toEqual(expected);
    expect(await client.headManifest(repo, image.descriptor.digest)).toEqual(expected);
    const byTag = await client.getManifest(repo, 'v1');
    expect(byTag.descriptor).toEqual(expected);
    expect(byTag.body).toEqual(image.manifest);
    expect((await client.getManifest(repo, image.descriptor.digest)).body).toEqual(image.manifest);

    expect(await skopeoRaw(`${repo.registry}/${repo.repository}:v1`)).toEqual(image.manifest);
  });

  it('answers null for a missing manifest and a 404 RegistryError on GET', async () => {
    const repo = repoIn(a);
    await pushImage(client, repo, makeImage('amd64'));
    expect(await client.headManifest(repo, 'nope')).toBeNull();
    const err = await client.getManifest(repo, 'nope').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RegistryError);
    expect(err).toMatchObject({ status: 404, code: 'MANIFEST_UNKNOWN', retryable: false });
    expect((err as Error).message).toMatch(/manifest unknown/);
  });

  it('uploads a streamed blob and refuses content that does not match its digest', async () => {
    const repo = repoIn(a);
    const data = randomBytes(300_000);
    const digest = sha256Digest(data);
    await client.uploadBlob(
      repo,
      digest,
      () => Readable.from([data.subarray(0, 100_000), data.subarray(100_000)]),
      data.length,
    );
    // Buffer.equals: jest's deep equality takes seconds on 300 KB.
    expect((await client.getBlob(repo, digest)).equals(data)).toBe(true);

    const other = randomBytes(1000);
    const wrong = sha256Digest(randomBytes(1000));
    await expect(client.uploadBlob(repo, wrong, other, other.length)).rejects.toThrow(/does not match/);
    await expect(client.uploadBlob(repo, wrong, () => Readable.from([other]), other.length)).rejects.toThrow(
      /hashes to/,
    );
    expect(await client.hasBlob(repo, wrong)).toBe(false);
  });

  it('pushes an image index referencing two image manifests under a tag', async () => {
    const repo = repoIn(a);
    const amd64 = makeImage('amd64');
    const arm64 = makeImage('arm64');
    await pushImage(client, repo, amd64);
    await pushImage(client, repo, arm64);
    const index = makeIndex([amd64.descriptor, arm64.descriptor]);

    const pushed = await client.putManifest(repo, '1.0', index, MediaTypes.ociIndex);
    expect(pushed).toEqual({ mediaType: MediaTypes.ociIndex, digest: sha256Digest(index), size: index.length });
    expect(await client.headManifest(repo, '1.0')).toEqual(pushed);
    const raw = JSON.parse((await skopeoRaw(`${repo.registry}/${repo.repository}:1.0`)).toString()) as {
      manifests: Descriptor[];
    };
    expect(raw.manifests.map((m) => [m.digest, m.platform?.architecture])).toEqual([
      [amd64.descriptor.digest, 'amd64'],
      [arm64.descriptor.digest, 'arm64'],
    ]);
  });

  it("rejects an index whose child is missing with the registry's own message", async () => {
    const repo = repoIn(a);
    const present = makeImage('amd64');
    await pushImage(client, repo, present);
    const elsewhere = makeImage('arm64');
    await pushImage(client, repoIn(a, 'elsewhere'), elsewhere);

    const err = await client
      .putManifest(repo, 'broken', makeIndex([present.descriptor, elsewhere.descriptor]), MediaTypes.ociIndex)
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RegistryError);
    expect(err).toMatchObject({ status: 400, code: 'MANIFEST_BLOB_UNKNOWN', retryable: false });
    expect((err as Error).message).toContain(elsewhere.descriptor.digest);
    expect((err as Error).message).toMatch(/MANIFEST_BLOB_UNKNOWN: blob unknown to registry/);
  });

  it('mounts a blob from another repository of the same registry', async () => {
    const source = repoIn(a, 'source');
    const target = repoIn(a, 'target');
    const image = makeImage('amd64');
    await pushImage(client, source, image);
    const layerDigest = sha256Digest(image.layer);

    expect(await client.hasBlob(target, layerDigest)).toBe(false);
    expect(await client.mountBlob(target, layerDigest, source.repository)).toBe(true);
    expect(await client.hasBlob(target, layerDigest)).toBe(true);
    expect(await client.getBlob(target, layerDigest)).toEqual(image.layer);

    // A blob the source lacks: the registry starts an upload instead, which gets cancelled.
    const absent = sha256Digest(randomBytes(64));
    expect(await client.mountBlob(target, absent, source.repository)).toBe(false);
    expect(await client.hasBlob(target, absent)).toBe(false);
  });

  it('copies an index with its children within a registry and across registries', async () => {
    const source = repoIn(a, 'src');
    const amd64 = makeImage('amd64');
    const arm64 = makeImage('arm64');
    await pushImage(client, source, amd64);
    await pushImage(client, source, arm64);
    const index = await client.putManifest(
      source,
      'multi',
      makeIndex([amd64.descriptor, arm64.descriptor]),
      MediaTypes.ociIndex,
    );

    for (const target of [repoIn(a, 'copy'), repoIn(b, 'copy')]) {
      const copied = await client.copyManifest(source, index.digest, target);
      expect(copied).toEqual(index);
      for (const image of [amd64, arm64]) {
        expect(await client.headManifest(target, image.descriptor.digest)).not.toBeNull();
        expect(await client.getBlob(target, sha256Digest(image.layer))).toEqual(image.layer);
        expect(await client.hasBlob(target, sha256Digest(image.config))).toBe(true);
      }
      // The copy is complete: the registry accepts the index under a tag, and skopeo reads it.
      await client.putManifest(
        target,
        'latest',
        (await client.getManifest(source, index.digest)).body,
        index.mediaType,
      );
      expect(sha256Digest(await skopeoRaw(`${target.registry}/${target.repository}:latest`))).toBe(index.digest);
      // A second copy finds everything in place.
      expect(await client.copyManifest(source, index.digest, target)).toEqual(index);
    }
  });
});

describe('RegistryClient.pushOciLayout with a layout built by buildah', () => {
  let registry: TestRegistry;
  let work: string;
  let layoutDir: string;
  const client = new RegistryClient();

  beforeAll(async () => {
    registry = await startRegistry();
    work = await mkdtemp(join(tmpdir(), 'farm-oci-buildah-'));
    // A private storage root so other users of buildah on this machine are not disturbed.
    const buildah = (...args: string[]): Promise<{ stdout: string }> =>
      execFileAsync('buildah', [
        '--root',
        join(work, 'root'),
        '--runroot',
        join(work, 'runroot'),
        '--storage-driver',
        'vfs',
        ...args,
      ]);
    try {
      const container = (await buildah('from', 'scratch')).stdout.trim();
      await writeFile(join(work, 'hello.txt'), `hello ${randomBytes(8).toString('hex')}\n`);
      await buildah('copy', container, join(work, 'hello.txt'), '/hello.txt');
      await buildah('config', '--os', 'linux', '--arch', 'amd64', '--cmd', '["/hello"]', container);
      // As a Dockerfile's LABEL would set them.
      await buildah('config', '--label', 'keep=from-dockerfile', '--label', 'replaced=from-dockerfile', container);
      await buildah('commit', '-q', container, 'farm-oci-test');
      layoutDir = join(work, 'layout');
      await buildah('push', '-q', 'farm-oci-test', `oci:${layoutDir}`);
      await buildah('rm', '-a');
    } finally {
      await buildah('rmi', '-a', '-f').catch(() => undefined);
    }
  });
  afterAll(async () => {
    await registry?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('pushes the image by digest and can mount its blobs from a repository that has them', async () => {
    const index = JSON.parse(await readFile(join(layoutDir, 'index.json'), 'utf8')) as { manifests: Descriptor[] };
    const expected = index.manifests[0];

    const first = repoIn(registry, 'built');
    const pushed = await client.pushOciLayout(layoutDir, first);
    expect(pushed).toEqual({ mediaType: expected.mediaType, digest: expected.digest, size: expected.size });
    const raw = await skopeoRaw(`${first.registry}/${first.repository}@${pushed.digest}`);
    expect(sha256Digest(raw)).toBe(pushed.digest);
    const manifest = JSON.parse(raw.toString()) as { config: Descriptor; layers: Descriptor[] };
    const config = JSON.parse((await client.getBlob(first, manifest.config.digest)).toString()) as {
      architecture: string;
    };
    expect(config.architecture).toBe('amd64');

    const second = repoIn(registry, 'mounted');
    expect(await client.pushOciLayout(layoutDir, second, { mountFrom: [first.repository] })).toEqual(pushed);
    for (const layer of manifest.layers) expect(await client.hasBlob(second, layer.digest)).toBe(true);
    // Pushing again is a no-op that still answers the descriptor.
    expect(await client.pushOciLayout(layoutDir, second)).toEqual(pushed);
  });

  it('uploads a blob its mount source lacks through the session the failed mount opened', async () => {
    const proxy = await startRegistryProxy(registry.url);
    try {
      const seen: ProxiedRequest[] = [];
      proxy.setDelay((request) => {
        seen.push(request);
        return 0;
      });
      const target = { registry: proxy.host, repository: `fresh-${randomBytes(4).toString('hex')}` };
      const pushed = await client.pushOciLayout(layoutDir, target, { mountFrom: ['never/pushed'] });
      const raw = await skopeoRaw(`${registry.host}/${target.repository}@${pushed.digest}`);
      expect(sha256Digest(raw)).toBe(pushed.digest);
      const blobs = (JSON.parse(raw.toString()).layers as Descriptor[]).length + 1;
      const count = (method: string, pattern: RegExp) =>
        seen.filter((r) => r.method === method && pattern.test(r.path)).length;
      expect(count('HEAD', /\/blobs\/sha256:/)).toBe(blobs);
      expect(count('POST', /\/blobs\/uploads\/\?mount=/)).toBe(blobs);
      // No second session per blob, and none abandoned.
      expect(count('POST', /\/blobs\/uploads\/$/)).toBe(0);
      expect(count('DELETE', /./)).toBe(0);
      expect(count('PUT', /\/blobs\/uploads\//)).toBe(blobs);
    } finally {
      await proxy.stop();
    }
  });

  it('labels the image of a layout in its config, keeping the layers, then pushes it', async () => {
    const copy = join(work, 'labeled');
    await cp(layoutDir, copy, { recursive: true });
    const before = (await readOciLayoutIndex(copy))[0];
    const labeled = await labelOciLayoutImage(copy, { replaced: 'by-farm', 'org.example.added': 'yes' });
    expect(labeled.digest).not.toBe(before.digest);
    expect(await readOciLayoutIndex(copy)).toEqual([labeled]);

    const target = repoIn(registry, 'labeled');
    expect(await client.pushOciLayout(copy, target)).toEqual({
      mediaType: labeled.mediaType,
      digest: labeled.digest,
      size: labeled.size,
    });
    const manifest = JSON.parse(
      (await skopeoRaw(`${target.registry}/${target.repository}@${labeled.digest}`)).toString(),
    );
    const original = JSON.parse(
      (await readFile(join(layoutDir, 'blobs', 'sha256', before.digest.slice(7)))).toString(),
    );
    expect(manifest.layers).toEqual(original.layers);
    const config = JSON.parse((await client.getBlob(target, manifest.config.digest)).toString());
    expect(config.config.Labels).toEqual({
      'io.buildah.version': expect.any(String),
      keep: 'from-dockerfile',
      replaced: 'by-farm',
      'org.example.added': 'yes',
    });
    expect(config.config.Cmd).toEqual(['/hello']);
    expect(config.rootfs).toEqual(
      JSON.parse((await readFile(join(layoutDir, 'blobs', 'sha256', original.config.digest.slice(7)))).toString())
        .rootfs,
    );
    // No labels: the layout is left as it is.
    expect(await labelOciLayoutImage(copy, {})).toEqual(labeled);
  });
});

describe('RegistryClient pushes of a blob two images share', () => {
  let source: TestRegistry;
  let target: TestRegistry;
  beforeAll(async () => {
    [source, target] = await Promise.all([startRegistry(), startRegistry()]);
  });
  afterAll(async () => {
    await Promise.all([source?.stop(), target?.stop()]);
  });

  it('share one upload into the same repository, however many copies run at once', async () => {
    const client = new RegistryClient();
    const layer = randomBytes(4096);
    const images = [makeImage('amd64', 'linux', layer), makeImage('arm64', 'linux', layer)];
    const from = repoIn(source, 'shared');
    for (const image of images) await pushImage(client, from, image);
    const proxy = await startRegistryProxy(target.url);
    try {
      const seen: ProxiedRequest[] = [];
      proxy.setDelay((request) => {
        seen.push(request);
        return 0;
      });
      const to = { registry: proxy.host, repository: 'shared/copy' };
      // As the coordinator copies a build's platforms into another registry: side by side.
      await Promise.all(images.map((image) => client.copyManifest(from, image.descriptor.digest, to)));
      const layerUploads = seen.filter(
        (r) =>
          r.method === 'PUT' &&
          r.path.includes('/blobs/uploads/') &&
          r.path.includes(sha256Digest(layer).slice('sha256:'.length)),
      );
      expect(layerUploads).toHaveLength(1);
      for (const image of images) expect(await client.headManifest(to, image.descriptor.digest)).not.toBeNull();
    } finally {
      await proxy.stop();
    }
  });
});

describe('RegistryClient manifest PUT refused with DIGEST_INVALID', () => {
  it('sends it once more: the content is known right, the registry was mid-write', async () => {
    const registry = await startRegistry();
    const faults = await startRegistryFaultProxy(registry.url);
    try {
      const client = new RegistryClient();
      const repo = { registry: faults.host, repository: 'retried/app' };
      const image = makeImage('amd64');
      const fault = { status: 400, code: 'DIGEST_INVALID', message: 'provided digest did not match uploaded content' };
      faults.inject({ match: (r) => isManifestPut(r), fault, times: 1 });
      expect(await pushImage(client, repo, image)).toMatchObject({ digest: image.descriptor.digest });
      expect(faults.injected).toHaveLength(1);
      expect(await client.headManifest(repo, image.descriptor.digest)).not.toBeNull();
    } finally {
      await faults.stop();
      await registry.stop();
    }
  });
});

describe('RegistryClient with Basic authentication', () => {
  let registry: TestRegistry;

  beforeAll(async () => {
    registry = await startRegistry({ auth: 'basic' });
  });
  afterAll(async () => {
    await registry?.stop();
  });

  it('pushes and reads with credentials from a docker config', async () => {
    const client = new RegistryClient({ dockerConfig: JSON.stringify(registry.dockerConfig) });
    await client.ping(registry.host);
    const repo = repoIn(registry);
    const image = makeImage('amd64');
    await pushImage(client, repo, image);
    await client.putManifest(repo, 'v1', image.manifest, MediaTypes.ociManifest);
    expect(await client.headManifest(repo, 'v1')).toMatchObject({ digest: image.descriptor.digest });
    expect(await skopeoRaw(`${repo.registry}/${repo.repository}:v1`, registry.credentials)).toEqual(image.manifest);
  });

  it("answers parallel first requests of a new client: each retries once the registry's challenge is known", async () => {
    const client = new RegistryClient({ dockerConfig: JSON.stringify(registry.dockerConfig) });
    const repo = repoIn(registry);
    const digests = ['1', '2', '3', '4'].map((c) => `sha256:${c.repeat(64)}`);
    expect(await Promise.all(digests.map((digest) => client.hasBlob(repo, digest)))).toEqual([
      false,
      false,
      false,
      false,
    ]);
  });

  it('fails with a clear 401 without credentials or with a wrong password', async () => {
    const anonymous = await new RegistryClient().ping(registry.host).catch((e: unknown) => e);
    expect(anonymous).toBeInstanceOf(RegistryError);
    expect(anonymous).toMatchObject({ status: 401 });
    expect((anonymous as Error).message).toMatch(/no username\/password is configured/);

    const password = 'wrong-password-123';
    const auth = Buffer.from(`${registry.credentials!.username}:${password}`).toString('base64');
    const client = new RegistryClient({ dockerConfig: { auths: { [registry.host]: { auth } } } });
    const err = await client.getManifest(repoIn(registry), 'v1').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RegistryError);
    expect(err).toMatchObject({ status: 401, code: 'UNAUTHORIZED', retryable: false });
    expect((err as Error).message).toMatch(/credentials configured for .* were refused/);
    for (const text of [(err as Error).message, inspect(err), inspect(client), JSON.stringify(err)]) {
      expect(text).not.toContain(password);
      expect(text).not.toContain(auth);
    }
  });
});

describe('RegistryClient with bearer token authentication', () => {
  let registry: TestRegistry;
  let basic: TestRegistry;

  beforeAll(async () => {
    [registry, basic] = await Promise.all([startRegistry({ auth: 'token' }), startRegistry({ auth: 'basic' })]);
  });
  afterAll(async () => {
    await Promise.all([registry?.stop(), basic?.stop()]);
  });

  it('pushes, mounts and reads with tokens, reusing cached tokens', async () => {
    const client = new RegistryClient({ dockerConfig: registry.dockerConfig });
    await client.ping(registry.host);
    const source = repoIn(registry, 'source');
    const image = makeImage('arm64');
    await pushImage(client, source, image);
    await client.putManifest(source, 'v1', image.manifest, MediaTypes.ociManifest);
    expect(await skopeoRaw(`${source.registry}/${source.repository}:v1`, registry.credentials)).toEqual(image.manifest);

    const issued = registry.tokenRequests!.issued;
    // Further reads and writes of the same repository reuse the cached token.
    for (let i = 0; i < 3; i++) {
      expect(await client.headManifest(source, 'v1')).toMatchObject({ digest: image.descriptor.digest });
      expect(await client.hasBlob(source, sha256Digest(image.layer))).toBe(true);
    }
    expect(registry.tokenRequests!.issued).toBe(issued);

    // A mount needs push on the target and pull on the source in one token.
    const target = repoIn(registry, 'target');
    expect(await client.mountBlob(target, sha256Digest(image.layer), source.repository)).toBe(true);
    expect(await client.copyManifest(source, image.descriptor.digest, target)).toMatchObject({
      digest: image.descriptor.digest,
    });
  });

  it('copies between a Basic-auth and a token-auth registry', async () => {
    const auths = { ...registry.dockerConfig.auths, ...basic.dockerConfig.auths };
    const client = new RegistryClient({ dockerConfig: { auths } });
    const source = repoIn(basic);
    const amd64 = makeImage('amd64');
    const arm64 = makeImage('arm64');
    await pushImage(client, source, amd64);
    await pushImage(client, source, arm64);
    const index = makeIndex([amd64.descriptor, arm64.descriptor]);
    await client.putManifest(source, 'v1', index, MediaTypes.ociIndex);

    const target = repoIn(registry);
    expect(await client.copyManifest(source, sha256Digest(index), target)).toMatchObject({
      digest: sha256Digest(index),
    });
    expect(await client.getBlob(target, sha256Digest(arm64.layer))).toEqual(arm64.layer);
  });

  it('authenticates with an identity token (OAuth2 refresh token)', async () => {
    const client = new RegistryClient({
      dockerConfig: { auths: { [registry.host]: { identitytoken: registry.identityToken } } },
    });
    const repo = repoIn(registry);
    await pushImage(client, repo, makeImage('amd64'));
  });

  it('fails with a clear 401 on a wrong password and without credentials', async () => {
    const password = 'not-the-password';
    const client = new RegistryClient({
      dockerConfig: { auths: { [registry.host]: { username: registry.credentials!.username, password } } },
    });
    const err = await client.headManifest(repoIn(registry), 'v1').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RegistryError);
    expect(err).toMatchObject({ status: 401, retryable: false });
    expect((err as Error).message).toMatch(
      /token request to http:\/\/127\.0\.0\.1:\d+\/token .*HTTP 401 invalid username or password/,
    );
    expect(inspect(err)).not.toContain(password);
    expect(inspect(client)).not.toContain(password);

    // Anonymous tokens grant nothing here: the registry refuses the pull.
    const anonymous = await new RegistryClient().getManifest(repoIn(registry), 'v1').catch((e: unknown) => e);
    expect(anonymous).toBeInstanceOf(RegistryError);
    expect(anonymous).toMatchObject({ status: 401, code: 'UNAUTHORIZED' });
    expect((anonymous as Error).message).toMatch(/no credentials are configured/);
  });
});

type Fault = '429' | '503' | 'reset';

/**
 * A reverse proxy in front of a real registry that answers planned requests with faults
 * (429/503 or a dropped connection) and forwards everything else.
 */
async function startFaultyProxy(upstream: string): Promise<{
  host: string;
  /** Each planned fault hits the first request whose `METHOD path` matches, once. */
  faults: { match: RegExp; fault: Fault }[];
  seen: string[];
  close(): Promise<void>;
}> {
  const faults: { match: RegExp; fault: Fault }[] = [];
  const seen: string[] = [];
  const [upstreamHost, upstreamPort] = upstream.split(':');
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const line = `${req.method} ${req.url}`;
    seen.push(line);
    const planned = faults.findIndex((f) => f.match.test(line));
    const fault = planned >= 0 ? faults.splice(planned, 1)[0].fault : undefined;
    if (fault === 'reset') {
      req.socket.destroy();
      return;
    }
    if (fault) {
      req.resume();
      res.writeHead(Number(fault), { 'retry-after': '0', 'content-type': 'application/json' });
      res.end(JSON.stringify({ errors: [{ code: 'TOOMANYREQUESTS', message: `injected ${fault}` }] }));
      return;
    }
    const forward = request(
      { host: upstreamHost, port: Number(upstreamPort), method: req.method, path: req.url, headers: req.headers },
      (upstreamRes) => {
        res.writeHead(upstreamRes.statusCode ?? 502, upstreamRes.headers);
        upstreamRes.pipe(res);
      },
    );
    forward.on('error', () => res.destroy());
    req.pipe(forward);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    host: `127.0.0.1:${(server.address() as AddressInfo).port}`,
    faults,
    seen,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

describe('RegistryClient retries', () => {
  let registry: TestRegistry;
  let proxy: Awaited<ReturnType<typeof startFaultyProxy>>;

  beforeAll(async () => {
    registry = await startRegistry();
    proxy = await startFaultyProxy(registry.host);
  });
  afterAll(async () => {
    await proxy?.close();
    await registry?.stop();
  });

  it('retries 429, 503 and dropped connections, restarting an upload whose PUT failed', async () => {
    const client = new RegistryClient({ retries: 3 });
    const repo = { registry: proxy.host, repository: 'team/retry' };
    const image = makeImage('amd64');
    const layerDigest = sha256Digest(image.layer);
    proxy.faults.push(
      { match: /^HEAD .*\/blobs\//, fault: '503' },
      { match: /^POST .*\/blobs\/uploads\/$/, fault: '429' },
      { match: /^PUT .*\/blobs\/uploads\/.*digest=/, fault: 'reset' },
      { match: /^PUT .*\/manifests\//, fault: '503' },
    );
    await client.uploadBlob(repo, layerDigest, () => Readable.from([image.layer]), image.layer.length);
    await pushImage(client, repo, image);
    expect(proxy.faults).toEqual([]);
    // The PUT that lost its connection was retried with a fresh upload session.
    const uploadRequests = proxy.seen.filter((l) => /blobs\/uploads/.test(l)).map((l) => l.split(' ')[0]);
    expect(uploadRequests.slice(0, 5)).toEqual(['POST', 'POST', 'PUT', 'POST', 'PUT']);
    const direct = { registry: registry.host, repository: repo.repository };
    expect(await client.getBlob(direct, layerDigest)).toEqual(image.layer);
    expect(await client.headManifest(direct, image.descriptor.digest)).not.toBeNull();
  });

  it('gives up after the configured retries and does not retry other 4xx', async () => {
    const client = new RegistryClient({ retries: 1 });
    const repo = { registry: proxy.host, repository: 'team/giveup' };
    proxy.faults.push({ match: /manifests\/v1$/, fault: '503' }, { match: /manifests\/v1$/, fault: '503' });
    const err = await client.getManifest(repo, 'v1').catch((e: unknown) => e);
    expect(err).toMatchObject({ status: 503, retryable: true });
    expect((err as Error).message).toMatch(/TOOMANYREQUESTS: injected 503/);

    const before = proxy.seen.length;
    await expect(client.getManifest(repo, 'missing')).rejects.toMatchObject({ status: 404, retryable: false });
    expect(proxy.seen.length - before).toBe(1);
  });
});

describe('RegistryClient transport choice and the test registry lifecycle', () => {
  it('uses plain http for loopback names and insecure registries, https otherwise', async () => {
    const registry = await startRegistry();
    try {
      const port = registry.host.split(':')[1];
      await new RegistryClient().ping(`localhost:${port}`);
      const secure = await new RegistryClient({ retries: 0 }).ping('registry.invalid:5000').catch((e: unknown) => e);
      expect((secure as Error).message).toMatch(/^GET https:\/\/registry\.invalid:5000\/v2\/: connection failed/);
      const insecure = await new RegistryClient({ retries: 0, insecureRegistries: ['registry.invalid'] })
        .ping('registry.invalid:5000')
        .catch((e: unknown) => e);
      expect(insecure).toMatchObject({ retryable: true });
      expect((insecure as Error).message).toMatch(/^GET http:\/\/registry\.invalid:5000\/v2\/: connection failed/);
    } finally {
      await registry.stop();
    }
  });

  it('stop() kills the registry; a client then reports a retryable connection error', async () => {
    const registry = await startRegistry();
    await new RegistryClient().ping(registry.host);
    await registry.stop();
    await registry.stop(); // idempotent
    await expect(new RegistryClient({ retries: 0 }).ping(registry.host)).rejects.toMatchObject({
      retryable: true,
      message: expect.stringMatching(/connection failed \(ECONNREFUSED\)/),
    });
  });
});
