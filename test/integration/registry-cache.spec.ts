import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { RegistryClient } from '@farm/oci';
import type { PlatformBuildJob } from '@farm/queue';
import type { BuildContext } from '../../apps/agent/src/builders/builder';
import { LocalBuildahBuilder } from '../../apps/agent/src/builders/local-buildah.builder';
import type { RegistryCacheSetting } from '../../apps/agent/src/builders/registry-cache';
import { connectSshBuilder, type SshBuilder } from '../../apps/agent/src/builders/ssh';
import { pushBusyboxBase } from '../helpers/base-images';
import { createGitRepo, type TestGitRepo } from '../helpers/git-repo';
import { requireFileInImage } from '../helpers/image-files';
import { startRegistry, type TestRegistry } from '../helpers/registry';
import { startSshd, type TestSshd } from '../helpers/sshd';
import { startTcpProxy, type TcpProxy } from '../helpers/tcp-proxy';

/**
 * The registry layer cache (FARM_REGISTRY_CACHE) with real buildah and a real registry that
 * requires credentials: agents of a pool are played by local builders, each with a state dir of
 * its own (a fresh one is a fresh agent: empty storage). The Dockerfile's RUN step writes the
 * time in nanoseconds, so equal stamps in two images mean the second build did not run the step.
 */

jest.setTimeout(180_000);
const run = promisify(execFile);

let registry: TestRegistry;
/** The same registry through a TCP proxy that the tests take down and bring back. */
let proxy: TcpProxy;
let proxyHost: string;
let dockerConfig: { auths: Record<string, { auth: string }> };
let client: RegistryClient;
let state: string;
let repo: TestGitRepo;
let secondCommit: string;
/** Every builder made, with its state dir. */
const builders = new Map<LocalBuildahBuilder, string>();
/** The cache setting the pool's agents share. */
let pool: RegistryCacheSetting;

beforeAll(async () => {
  state = await mkdtemp(join(tmpdir(), 'farm-registry-cache-'));
  registry = await startRegistry({ auth: 'basic' });
  proxy = await startTcpProxy({ host: '127.0.0.1', port: Number(registry.host.split(':')[1]) });
  proxyHost = `127.0.0.1:${proxy.port}`;
  const credentials = registry.dockerConfig.auths[registry.host]!;
  dockerConfig = { auths: { [registry.host]: credentials, [proxyHost]: credentials } };
  client = new RegistryClient({ dockerConfig });
  pool = { registry: registry.host, repository: 'pool/cache' };
  const base = await pushBusyboxBase(registry.host, registry.credentials);
  repo = await createGitRepo({
    Dockerfile: `FROM ${base}\nRUN cat /proc/sys/kernel/random/uuid > /stamp && uname -m > /arch\nCOPY hello.txt /hello.txt\n`,
    'hello.txt': 'one\n',
  });
  secondCommit = await repo.commitFiles({ 'hello.txt': 'two\n' });
});

afterAll(async () => {
  // Unmounts what a failed build may have left before the state dirs go.
  for (const builder of builders.keys()) await builder.removeLeftovers().catch(() => undefined);
  await proxy?.stop();
  await registry?.stop();
  await repo?.remove();
  if (state) await rm(state, { recursive: true, force: true });
});

/** A fresh agent: a state dir (buildah storage) of its own. */
function freshBuilder(architecture: 'amd64' | 'arm64', registryCache?: RegistryCacheSetting): LocalBuildahBuilder {
  const stateDir = join(state, `agent-${randomBytes(4).toString('hex')}`);
  const builder = new LocalBuildahBuilder({
    platform: { os: 'linux', architecture },
    emulated: architecture !== 'amd64',
    stateDir,
    allowFileRepos: true,
    registry: client,
    insecureRegistries: [],
    registryAuth: dockerConfig,
    registryCache,
  });
  builders.set(builder, stateDir);
  return builder;
}

interface Built {
  repository: string;
  digest: string;
  lines: string[];
}

async function build(
  builder: LocalBuildahBuilder | SshBuilder,
  commit: string,
  extra: Partial<PlatformBuildJob> = {},
): Promise<Built> {
  const job: PlatformBuildJob = {
    buildId: `b-${randomBytes(6).toString('hex')}`,
    platform: `linux/${builder.platform.architecture}`,
    repo: repo.url,
    commit,
    dockerfile: 'Dockerfile',
    context: '.',
    buildArgs: {},
    labels: {},
    pushTo: { registry: registry.host, repository: `app/${randomBytes(4).toString('hex')}` },
    ...extra,
  };
  const lines: string[] = [];
  const context: BuildContext = { signal: new AbortController().signal, log: (line) => lines.push(line) };
  try {
    await builder.setup(job, context);
    const image = await builder.run(job, context);
    return { repository: job.pushTo.repository, digest: image.digest, lines };
  } finally {
    await builder.destroy(job);
  }
}

async function manifestOf(repository: string, reference: string) {
  const { body } = await client.getManifest({ registry: registry.host, repository }, reference);
  return JSON.parse(body.toString()) as {
    config: { digest: string };
    layers: { digest: string; mediaType: string }[];
  };
}

/** The file's content in the pushed image; fails when no layer has it. */
const fileIn = (image: { repository: string; digest: string }, path: string) =>
  requireFileInImage(client, registry.host, image, path);

/** The tags of a repository of the registry; [] when it does not exist. */
async function tagsOf(repository: string): Promise<string[]> {
  const { username, password } = registry.credentials!;
  const response = await fetch(`${registry.url}/v2/${repository}/tags/list`, {
    headers: { authorization: `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}` },
  });
  if (response.status === 404) return [];
  expect(response.status).toBe(200);
  return ((await response.json()) as { tags: string[] | null }).tags ?? [];
}

/** The architecture of every image in a cache repository. */
async function architecturesIn(repository: string): Promise<string[]> {
  const architectures = new Set<string>();
  for (const tag of await tagsOf(repository)) {
    const manifest = await manifestOf(repository, tag);
    const config = await client.getBlob({ registry: registry.host, repository }, manifest.config.digest);
    architectures.add((JSON.parse(config.toString()) as { architecture: string }).architecture);
  }
  return [...architectures];
}

/** Runs buildah on the storage of the state dir of an agent (`<dir>/storage`, `<dir>/run`), on this machine. */
async function buildahIn(stateDir: string, ...args: string[]): Promise<string[]> {
  const storage = ['--root', join(stateDir, 'storage'), '--runroot', join(stateDir, 'run')];
  const { stdout } = await run('buildah', [...storage, '--storage-driver', 'overlay', ...args]);
  return stdout.split('\n').filter(Boolean);
}

/** The names of jobs' images (registry cache) in an agent's storage. */
async function jobImageNames(stateDir: string): Promise<string[]> {
  const names = await buildahIn(stateDir, 'images', '--noheading', '--format', '{{.Name}}:{{.Tag}}');
  return names.filter((name) => name.startsWith('localhost/farm-job/'));
}

/** Leaves a job image name behind in an agent's storage, as an agent killed before removing it would. */
async function leaveJobImageName(stateDir: string, image: string): Promise<void> {
  await buildahIn(stateDir, 'tag', image, 'localhost/farm-job/leftover-linux-amd64');
  expect(await jobImageNames(stateDir)).toEqual(['localhost/farm-job/leftover-linux-amd64:latest']);
}

describe('registry layer cache', () => {
  /** What the first agent of the pool built. */
  let first: { stamp: string; arch: string };

  test('a fresh agent of the pool does not run a step that another agent pushed to the cache', async () => {
    const a = await build(freshBuilder('amd64', pool), repo.commit);
    first = { stamp: await fileIn(a, 'stamp'), arch: await fileIn(a, 'arch') };
    expect(first.arch).toBe('x86_64\n');

    const fresh = freshBuilder('amd64', pool);
    const b = await build(fresh, secondCommit);
    expect(await fileIn(b, 'hello.txt')).toBe('two\n');
    expect(await fileIn(b, 'stamp')).toBe(first.stamp);

    // The image is the one the farm pushes without the cache: gzip layers, the commit's label.
    const manifest = await manifestOf(b.repository, b.digest);
    expect(manifest.layers.every((layer) => layer.mediaType === 'application/vnd.oci.image.layer.v1.tar+gzip')).toBe(
      true,
    );
    const config = await client.getBlob({ registry: registry.host, repository: b.repository }, manifest.config.digest);
    const labels = (JSON.parse(config.toString()) as { config: { Labels: Record<string, string> } }).config.Labels;
    expect(labels['org.opencontainers.image.revision']).toBe(secondCommit);
    // The job's name is gone from storage; the layers stay as the agent's own cache. A name
    // that a killed agent left behind goes when the agent starts again.
    const stateDir = builders.get(fresh)!;
    expect(await jobImageNames(stateDir)).toEqual([]);
    await leaveJobImageName(stateDir, `${registry.host}/base/busybox:latest`);
    await fresh.cleanUpPreviousRun(() => undefined);
    expect(await jobImageNames(stateDir)).toEqual([]);
    expect(await buildahIn(stateDir, 'images', '--noheading', '--format', '{{.Name}}')).toContain(
      `${registry.host}/base/busybox`,
    );
  });

  test('without the setting, a fresh agent runs the step again', async () => {
    const e = await build(freshBuilder('amd64'), secondCommit);
    expect(await fileIn(e, 'stamp')).not.toBe(first.stamp);
  });

  test('each platform has a cache repository of its own', async () => {
    const c = await build(freshBuilder('arm64', pool), repo.commit);
    const armStamp = await fileIn(c, 'stamp');
    expect(await fileIn(c, 'arch')).toBe('aarch64\n');
    expect(armStamp).not.toBe(first.stamp);

    const d = await build(freshBuilder('arm64', pool), secondCommit);
    expect(await fileIn(d, 'stamp')).toBe(armStamp);
    expect(await fileIn(d, 'arch')).toBe('aarch64\n');

    expect(await architecturesIn('pool/cache/buildcache-linux-amd64')).toEqual(['amd64']);
    expect(await architecturesIn('pool/cache/buildcache-linux-arm64')).toEqual(['arm64']);
  });

  test('a no-cache job reads nothing from the cache but refreshes it for later builds', async () => {
    const f = await build(freshBuilder('amd64', pool), secondCommit, { noCache: true });
    const refreshed = await fileIn(f, 'stamp');
    expect(refreshed).not.toBe(first.stamp);

    const g = await build(freshBuilder('amd64', pool), repo.commit);
    expect(await fileIn(g, 'stamp')).toBe(refreshed);
  });

  test('a cache registry that is down costs the cache, not the build', async () => {
    const down: RegistryCacheSetting = { registry: proxyHost, repository: 'down/cache' };
    const builder = freshBuilder('amd64', down);
    await proxy.cut('refuse');
    const h = await build(builder, repo.commit);
    expect(await fileIn(h, 'hello.txt')).toBe('one\n');
    expect(await tagsOf('down/cache/buildcache-linux-amd64')).toEqual([]);

    // Back up, but the builder leaves the cache out for a while after it failed a build.
    await proxy.restore();
    const connections = proxy.accepted;
    const i = await build(builder, secondCommit);
    expect(await fileIn(i, 'hello.txt')).toBe('two\n');
    expect(proxy.accepted).toBe(connections);
    expect(await tagsOf('down/cache/buildcache-linux-amd64')).toEqual([]);
  });
});

describe('registry layer cache over SSH', () => {
  let sshd: TestSshd;
  /** The registry as the SSH host reaches it. */
  let registryForHost: string;
  /** The same Dockerfile, its base named as the host reaches it. */
  let sshRepo: TestGitRepo;
  let sshSecondCommit: string;
  const sshBuilders: SshBuilder[] = [];

  beforeAll(async () => {
    sshd = await startSshd();
    registryForHost = await sshd.reach(Number(registry.host.split(':')[1]));
    sshRepo = await createGitRepo({
      Dockerfile: `FROM ${registryForHost}/base/busybox:latest\nRUN cat /proc/sys/kernel/random/uuid > /stamp\nCOPY hello.txt /hello.txt\n`,
      'hello.txt': 'one\n',
    });
    sshSecondCommit = await sshRepo.commitFiles({ 'hello.txt': 'two\n' });
  });

  afterAll(async () => {
    for (const builder of sshBuilders) await builder.close().catch(() => undefined);
    await sshd?.stop();
    await sshRepo?.remove();
  });

  /** A fresh agent unless `name` was used before: the name is its state dir and buildah storage on the host. */
  async function sshBuilder(name = `ssh-${randomBytes(4).toString('hex')}`): Promise<SshBuilder> {
    const builder = await connectSshBuilder(
      { url: sshd.url, privateKey: sshd.clientKey, hostKeyFingerprint: sshd.hostKeyFingerprint },
      {
        name,
        allowFileRepos: true,
        registry: client,
        insecureRegistries: [registryForHost],
        registryAuth: { auths: { ...dockerConfig.auths, [registryForHost]: dockerConfig.auths[registry.host]! } },
        registryCache: { registry: registryForHost, repository: 'ssh/cache' },
        remoteStateDir: join(state, 'remote'),
        localWorkDir: join(state, 'local'),
        log: () => undefined,
      },
    );
    sshBuilders.push(builder);
    return builder;
  }

  test('a fresh agent on the host does not run a step that another agent pushed to the cache', async () => {
    const a = await build(await sshBuilder(), sshRepo.commit, { repo: sshRepo.url });
    const stamp = await fileIn(a, 'stamp');
    const name = `ssh-${randomBytes(4).toString('hex')}`;
    const b = await build(await sshBuilder(name), sshSecondCommit, { repo: sshRepo.url });
    expect(await fileIn(b, 'hello.txt')).toBe('two\n');
    expect(await fileIn(b, 'stamp')).toBe(stamp);
    expect(await architecturesIn('ssh/cache/buildcache-linux-amd64')).toEqual(['amd64']);

    // No job name stays in the host's storage; one left by a cut connection goes with the next one.
    const hostStateDir = join(state, 'remote', 'agents', name);
    expect(await jobImageNames(hostStateDir)).toEqual([]);
    await leaveJobImageName(hostStateDir, `${registryForHost}/base/busybox:latest`);
    await sshBuilder(name);
    expect(await jobImageNames(hostStateDir)).toEqual([]);
  });
});
