import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { createIsolatedBuildah, pushBusyboxBase, type IsolatedBuildah } from '../helpers/base-images';
import { startRegistry, type TestRegistry } from '../helpers/registry';

const run = promisify(execFile);
jest.setTimeout(120_000);

async function skopeoInspect(args: string[]): Promise<Record<string, unknown>> {
  const { stdout } = await run('skopeo', ['inspect', '--tls-verify=false', ...args]);
  return JSON.parse(stdout) as Record<string, unknown>;
}

describe('pushBusyboxBase', () => {
  let registry: TestRegistry;
  let store: IsolatedBuildah;
  let work: string;

  beforeAll(async () => {
    registry = await startRegistry();
    store = await createIsolatedBuildah();
    work = await mkdtemp(join(tmpdir(), 'farm-base-images-'));
  });

  afterAll(async () => {
    await store?.remove();
    await registry?.stop();
    await rm(work, { recursive: true, force: true });
  });

  it('pushes an OCI image index with one busybox image per platform', async () => {
    const reference = await pushBusyboxBase(registry.host);
    expect(reference).toBe(`${registry.host}/base/busybox:latest`);

    const index = await skopeoInspect(['--raw', `docker://${reference}`]);
    expect(index.mediaType).toBe('application/vnd.oci.image.index.v1+json');
    const platforms = (index.manifests as { mediaType: string; platform: { os: string; architecture: string } }[]).map(
      (m) => [m.mediaType, `${m.platform.os}/${m.platform.architecture}`],
    );
    expect(platforms).toEqual([
      ['application/vnd.oci.image.manifest.v1+json', 'linux/amd64'],
      ['application/vnd.oci.image.manifest.v1+json', 'linux/arm64'],
    ]);

    for (const arch of ['amd64', 'arm64']) {
      const config = await skopeoInspect(['--config', '--override-arch', arch, `docker://${reference}`]);
      expect(config).toMatchObject({ os: 'linux', architecture: arch, config: { Cmd: ['/bin/sh'] } });
    }
  });

  it('returns the same reference on the next call', async () => {
    const first = await pushBusyboxBase(registry.host);
    await expect(pushBusyboxBase(registry.host)).resolves.toBe(first);
  });

  it.each([
    ['linux/arm64', 'arm64', 'aarch64'],
    ['linux/amd64', 'amd64', 'x86_64'],
  ])('is a base buildah can build FROM with RUN for %s', async (platform, arch, uname) => {
    const base = await pushBusyboxBase(registry.host);
    const context = join(work, arch);
    await run('mkdir', ['-p', context]);
    await writeFile(join(context, 'Dockerfile'), `FROM ${base}\nRUN uname -m > /arch\n`);

    const image = `localhost/farm-test-arch-${arch}`;
    await store.buildah(
      'bud',
      '--quiet',
      '--isolation',
      'chroot',
      '--tls-verify=false',
      '--platform',
      platform,
      '--tag',
      image,
      context,
    );
    expect(await store.buildah('inspect', '--type', 'image', '--format', '{{.OCIv1.Architecture}}', image)).toBe(arch);

    const container = await store.buildah('from', '--quiet', '--pull-never', image);
    try {
      const root = await store.buildah('mount', container);
      expect(await readFile(join(root, 'arch'), 'utf8')).toBe(`${uname}\n`);
    } finally {
      await store.buildah('rm', container);
    }
  });

  it.each(['basic', 'token'] as const)('pushes to a registry with %s auth, with the same digest', async (auth) => {
    const secured = await startRegistry({ auth });
    try {
      const { username, password } = secured.credentials!;
      const reference = await pushBusyboxBase(secured.host, { username, password });
      const digest = async (ref: string, creds: string[]): Promise<string> =>
        (await skopeoInspect([...creds, `docker://${ref}`])).Digest as string;

      const securedDigest = await digest(reference, ['--creds', `${username}:${password}`]);
      expect(securedDigest).toMatch(/^sha256:[0-9a-f]{64}$/);
      expect(securedDigest).toBe(await digest(await pushBusyboxBase(registry.host), []));
    } finally {
      await secured.stop();
    }
  });
});
