import { Redis } from 'ioredis';
import { Client } from 'pg';
import { pushBusyboxBase } from '../helpers/base-images';
import { archDockerfile, failingOnArm64Dockerfile } from '../helpers/dockerfiles';
import { createTestDatabase, type TestDatabase } from '../helpers/database';
import { startFarm, type TestFarm } from '../helpers/farm';
import { createGitRepo, type TestGitRepo } from '../helpers/git-repo';
import { readFileFromImage, skopeoConfig, skopeoRaw } from '../helpers/image-files';
import { startRegistry, type TestRegistry } from '../helpers/registry';

/**
 * The spine, end to end through the REST API: real PostgreSQL, Redis, docker-registry,
 * buildah and git; a native amd64 agent and an arm64 agent under declared qemu-user emulation.
 */

jest.setTimeout(240_000);

let registry: TestRegistry;
let database: TestDatabase;
let farm: TestFarm;
let repo: TestGitRepo;

beforeAll(async () => {
  [registry, database] = await Promise.all([startRegistry(), createTestDatabase()]);
  const base = await pushBusyboxBase(registry.host);
  repo = await createGitRepo({
    Dockerfile: archDockerfile(base),
    'hello.txt': 'hello from the farm\n',
    'Dockerfile.fail': failingOnArm64Dockerfile(base),
  });
  farm = await startFarm({
    databaseUrl: database.url,
    agents: [{ name: 'native-amd64' }, { platform: 'linux/arm64', emulated: true, name: 'qemu-arm64' }],
  });
});

afterAll(async () => {
  await farm?.stop();
  await Promise.all([registry?.stop(), database?.drop(), repo?.remove()]);
});

test('a two-platform build becomes one published OCI index with native and emulated images', async () => {
  const tag = `${registry.host}/team/app:1.0`;
  const submitted = await farm.request('POST', '/v1/builds', {
    repo: repo.url,
    ref: 'main',
    platforms: ['linux/amd64', 'linux/arm64'],
    tags: [tag, `${registry.host}/team/app:latest`],
  });
  expect(submitted.status).toBe(202);
  expect(submitted.body).toMatchObject({ status: 'queued', commit: repo.commit, ref: 'main' });

  const seen = new Set<string>(['queued']);
  const build = await farm.waitForBuild(submitted.body.id, (shown) => {
    seen.add(shown.status);
    return shown.finishedAt !== null;
  });
  expect(build.status).toBe('succeeded');
  expect(seen.has('running')).toBe(true);
  expect(build.digest).toMatch(/^sha256:[0-9a-f]{64}$/);
  expect(build.mediaType).toBe('application/vnd.oci.image.index.v1+json');
  expect(build.platforms).toEqual([
    expect.objectContaining({ platform: 'linux/amd64', status: 'succeeded', agent: 'native-amd64', emulated: false }),
    expect.objectContaining({ platform: 'linux/arm64', status: 'succeeded', agent: 'qemu-arm64', emulated: true }),
  ]);
  for (const platform of build.platforms) {
    expect(platform.digest).toMatch(/^sha256:/);
    expect(Date.parse(platform.finishedAt)).toBeGreaterThanOrEqual(Date.parse(platform.startedAt));
  }

  // What a real client sees under both tags: the same index, exactly those two platforms.
  const index = await skopeoRaw(tag);
  expect(await skopeoRaw(`${registry.host}/team/app:latest`)).toEqual(index);
  expect(index.mediaType).toBe('application/vnd.oci.image.index.v1+json');
  expect(index.annotations?.['org.opencontainers.image.revision']).toBe(repo.commit);
  expect(index.manifests.map((m: any) => m.platform)).toEqual([
    { os: 'linux', architecture: 'amd64' },
    { os: 'linux', architecture: 'arm64' },
  ]);
  const expected = { amd64: 'x86_64', arm64: 'aarch64' } as Record<string, string>;
  for (const entry of index.manifests) {
    const arch = entry.platform.architecture as string;
    expect(entry.digest).toBe(build.platforms.find((p: any) => p.platform === `linux/${arch}`).digest);
    const config = await skopeoConfig(`${registry.host}/team/app@${entry.digest}`);
    expect(config).toMatchObject({ os: 'linux', architecture: arch });
    expect(config.config.Labels['org.opencontainers.image.revision']).toBe(repo.commit);
    expect((await readFileFromImage(registry.url, 'team/app', entry.digest, '/arch'))?.trim()).toBe(expected[arch]);
    expect(await readFileFromImage(registry.url, 'team/app', entry.digest, '/hello.txt')).toBe('hello from the farm\n');
  }

  const logs = await farm.request('GET', `/v1/builds/${build.id}/logs?platform=linux/arm64`);
  expect(logs.status).toBe(200);
  expect(logs.body).toContain('RUN uname -m > /arch');
  expect(logs.body).toContain('emulated');
});

test('tags in other repositories and another registry get the index and its children', async () => {
  const mirror = await startRegistry();
  try {
    const tags = [
      `${registry.host}/team/app:multi`,
      `${registry.host}/other/app:multi`,
      `${mirror.host}/mirror/app:multi`,
    ];
    const submitted = await farm.request('POST', '/v1/builds', {
      repo: repo.url,
      ref: 'main',
      platforms: ['linux/amd64', 'linux/arm64'],
      tags,
    });
    expect(submitted.status).toBe(202);
    const build = await farm.waitForBuild(submitted.body.id);
    expect(build.status).toBe('succeeded');
    for (const tag of tags) {
      const index = await skopeoRaw(tag);
      expect(index.manifests.map((m: any) => m.digest)).toEqual(build.platforms.map((p: any) => p.digest));
      // The children (and their blobs) exist where the index is: a client can pull every platform.
      for (const entry of index.manifests) {
        const config = await skopeoConfig(`${tag.replace(/:multi$/, '')}@${entry.digest}`);
        expect(config.architecture).toBe(entry.platform.architecture);
      }
    }
  } finally {
    await mirror.stop();
  }
});

test('one failing platform fails the build, keeps the other result and publishes nothing', async () => {
  const tag = `${registry.host}/team/app:broken`;
  const submitted = await farm.request('POST', '/v1/builds', {
    repo: repo.url,
    commit: repo.commit,
    dockerfile: 'Dockerfile.fail',
    platforms: ['linux/amd64', 'linux/arm64'],
    tags: [tag],
  });
  expect(submitted.status).toBe(202);
  const build = await farm.waitForBuild(submitted.body.id);
  expect(build.status).toBe('failed');
  expect(build.digest).toBeNull();
  expect(build.error).toContain('linux/arm64');
  const [amd64, arm64] = build.platforms;
  expect(amd64).toMatchObject({ platform: 'linux/amd64', status: 'succeeded', error: null });
  expect(amd64.digest).toMatch(/^sha256:/);
  expect(arm64).toMatchObject({ platform: 'linux/arm64', status: 'failed' });
  expect(arm64.error).toMatch(/build failed/);
  expect(arm64.logTail).toContain('about to fail on arm64');
  // BuildKit-style: a deterministic build failure is not retried.
  expect(arm64.attempts).toBe(1);

  const tagResponse = await fetch(`${registry.url}/v2/team/app/manifests/broken`, { method: 'HEAD' });
  expect(tagResponse.status).toBe(404);

  const logs = await farm.request('GET', `/v1/builds/${build.id}/logs?platform=linux/arm64`);
  expect(logs.body).toContain('about to fail on arm64');
});

describe('bad requests are refused and leave nothing stored or queued', () => {
  const valid = () => ({ repo: repo.url, ref: 'main', platforms: ['linux/amd64'], tags: [`${registry.host}/x/y:1`] });

  async function storedCounts() {
    const client = new Client({ connectionString: database.url });
    await client.connect();
    try {
      const { rows } = await client.query('SELECT count(*)::int AS n FROM "Build"');
      const redis = new Redis('redis://127.0.0.1:6379');
      const keys = await redis.keys(`${farm.queuePrefix}:build.*:wait`);
      const waiting = await Promise.all(keys.map((key) => redis.llen(key)));
      redis.disconnect();
      return { builds: rows[0].n as number, waiting: waiting.reduce((a, b) => a + b, 0) };
    } finally {
      await client.end();
    }
  }

  const cases: [string, (body: any) => any, string][] = [
    ['unknown platform', (b) => ({ ...b, platforms: ['linux/x86'] }), 'platforms[0]'],
    ['empty platform component', (b) => ({ ...b, platforms: ['linux//arm64'] }), 'platforms[0]'],
    ['platform without os', (b) => ({ ...b, platforms: ['amd64'] }), 'platforms[0]'],
    ['duplicate platform', (b) => ({ ...b, platforms: ['linux/arm64', 'linux/arm64/v8'] }), 'platforms'],
    ['no platforms', (b) => ({ ...b, platforms: [] }), 'platforms'],
    ['invalid tag', (b) => ({ ...b, tags: ['127.0.0.1:5000/Team/App:1'] }), 'tags[0]'],
    ['tag with bad characters', (b) => ({ ...b, tags: ['127.0.0.1:5000/team/app:-x'] }), 'tags[0]'],
    ['digest instead of tag', (b) => ({ ...b, tags: [`127.0.0.1:5000/a/b@sha256:${'a'.repeat(64)}`] }), 'tags[0]'],
    ['no tags', (b) => ({ ...b, tags: [] }), 'tags'],
    ['missing repo', ({ repo: _repo, ...b }) => b, 'repo'],
    ['ext:: repo', (b) => ({ ...b, repo: 'ext::sh -c touch% /tmp/pwned' }), 'repo'],
    ['option as repo', (b) => ({ ...b, repo: '--upload-pack=touch /tmp/pwned' }), 'repo'],
    ['ref starting with -', (b) => ({ ...b, ref: '--output=/tmp/x' }), 'ref'],
    ['dockerfile escaping the repo', (b) => ({ ...b, dockerfile: '../../etc/passwd' }), 'dockerfile'],
    ['absolute context', (b) => ({ ...b, context: '/etc' }), 'context'],
    ['oversized repo', (b) => ({ ...b, repo: `https://example.com/${'a'.repeat(3000)}` }), 'repo'],
    ['unknown field', (b) => ({ ...b, privileged: true }), 'privileged'],
    ['non-string build arg', (b) => ({ ...b, buildArgs: { A: 1 } }), 'buildArgs.A'],
  ];

  test.each(cases)('%s -> 400', async (_name, change, field) => {
    const before = await storedCounts();
    const response = await farm.request('POST', '/v1/builds', change(valid()));
    expect(response.status).toBe(400);
    expect(response.body.error).toEqual(expect.objectContaining({ code: 'invalid_request', field }));
    expect(typeof response.body.error.message).toBe('string');
    expect(await storedCounts()).toEqual(before);
  });

  test('a ref that does not exist -> 422, nothing stored', async () => {
    const before = await storedCounts();
    const response = await farm.request('POST', '/v1/builds', { ...valid(), ref: 'no-such-branch' });
    expect(response.status).toBe(422);
    expect(response.body.error).toMatchObject({ code: 'unprocessable', field: 'ref' });
    expect(await storedCounts()).toEqual(before);
  });

  test('malformed JSON -> 400 with the error body', async () => {
    const response = await farm.request('POST', '/v1/builds', '{"repo": ');
    expect(response.status).toBe(400);
    expect(response.body.error.code).toBe('invalid_request');
  });

  test('no token or an unknown token -> 401', async () => {
    for (const token of [null, 'not-the-admin-token']) {
      const before = await storedCounts();
      const response = await farm.request('POST', '/v1/builds', valid(), token);
      expect(response.status).toBe(401);
      expect(response.body.error.code).toBe('unauthorized');
      expect(await storedCounts()).toEqual(before);
      expect((await farm.request('GET', `/v1/builds`, undefined, token)).status).toBe(401);
    }
  });

  test('an unknown build -> 404', async () => {
    const response = await farm.request('GET', '/v1/builds/00000000-0000-4000-8000-000000000000');
    expect(response.status).toBe(404);
    expect(response.body.error.code).toBe('not_found');
  });
});
