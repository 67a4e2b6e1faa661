import { randomUUID } from 'node:crypto';
import { Client } from 'pg';
import { pushBusyboxBase } from '../helpers/base-images';
import { createTestDatabase, type TestDatabase } from '../helpers/database';
import { startFarm, waitFor, type TestFarm } from '../helpers/farm';
import { createGitRepo, type TestGitRepo } from '../helpers/git-repo';
import { skopeoConfig, skopeoRaw } from '../helpers/image-files';
import { startRegistry, type TestRegistry } from '../helpers/registry';
import { fixture, forgeHeaders, startForgeApi, type Forge } from '../helpers/webhooks';

/**
 * Git push webhooks end to end: the forges' real payloads, signed the way each forge signs,
 * delivered to the farm's hooks; builds published in a real registry; commit statuses sent to a
 * local server standing in for each forge's API.
 */

jest.setTimeout(240_000);

const SECRET = 'hook-secret-0123456789';
const FORGE_TOKEN = 'forge-token-abcdef';
const TEMPLATES = ['{branch}', '{tag}', 'sha-{sha7}', 'latest', '{version}', '{major}.{minor}'];

let registry: TestRegistry;
let database: TestDatabase;
let farm: TestFarm;
let repo: TestGitRepo;
let forgeApi: Awaited<ReturnType<typeof startForgeApi>>;
const projects: Record<Forge, string> = { github: '', gitlab: '', gitea: '' };

async function deliver(forge: Forge, event: string, body: Buffer, headers = forgeHeaders(forge, event, body, SECRET)) {
  const response = await fetch(`${farm.apiUrl}/v1/projects/${projects[forge]}/hooks/${forge}`, {
    method: 'POST',
    headers,
    body,
  });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : undefined, headers: response.headers };
}

/**
 * The fixtures' commits exist only in the forges' own repositories. For a publish end to end,
 * the same payload is sent with its pushed commit replaced by one of the test repository (which
 * the project clones), exactly what the forge would send for a push of that commit.
 */
function pushOf(path: string, commit: string, fields: string[]): Buffer {
  const payload = JSON.parse(fixture(path).toString());
  for (const field of fields) {
    if (field === 'head_commit.id') payload.head_commit.id = commit;
    else payload[field] = commit;
  }
  return Buffer.from(JSON.stringify(payload));
}

async function buildsOfProject(projectId: string): Promise<number> {
  const client = new Client({ connectionString: database.url });
  await client.connect();
  try {
    const { rows } = await client.query('SELECT count(*)::int AS n FROM "Build" WHERE "projectId" = $1', [projectId]);
    return rows[0].n;
  } finally {
    await client.end();
  }
}

beforeAll(async () => {
  [registry, database, forgeApi] = await Promise.all([startRegistry(), createTestDatabase(), startForgeApi()]);
  const base = await pushBusyboxBase(registry.host);
  repo = await createGitRepo({ Dockerfile: `FROM ${base}\nRUN uname -m > /arch\n` });
  farm = await startFarm({
    databaseUrl: database.url,
    agents: [{ name: 'native-amd64' }, { platform: 'linux/arm64', emulated: true, name: 'qemu-arm64' }],
  });
  for (const forge of ['github', 'gitlab', 'gitea'] as const) {
    const created = await farm.request('POST', '/v1/projects', {
      name: `app-${forge}`,
      repo: repo.url,
      image: `${registry.host}/hooks/${forge}`,
      platforms: ['linux/amd64', 'linux/arm64'],
      tags: TEMPLATES,
      branches: ['main', 'master', 'feature/**'],
      webhookSecret: SECRET,
      forge,
      forgeApiUrl: forgeApi.url,
      forgeRepository: 'team/app',
      forgeToken: FORGE_TOKEN,
    });
    expect(created.status).toBe(201);
    projects[forge] = created.body.id;
  }
});

afterAll(async () => {
  await farm?.stop();
  await Promise.all([registry?.stop(), database?.drop(), repo?.remove(), forgeApi?.stop()]);
});

test('projects never show their secrets', async () => {
  const shown = await farm.request('GET', `/v1/projects/${projects.github}`);
  expect(shown.status).toBe(200);
  expect(shown.body).toMatchObject({ name: 'app-github', hasForgeToken: true, tags: TEMPLATES });
  const listed = await farm.request('GET', '/v1/projects');
  for (const text of [JSON.stringify(shown.body), JSON.stringify(listed.body)]) {
    expect(text).not.toContain(SECRET);
    expect(text).not.toContain(FORGE_TOKEN);
  }
});

test('a GitHub push publishes the pushed commit under the rendered tags and reports statuses', async () => {
  const body = pushOf('github/push-branch-created.json', repo.commit, ['after', 'head_commit.id']);
  const answer = await deliver('github', 'push', body);
  expect(answer.status).toBe(202);
  expect(answer.body).toMatchObject({ outcome: 'build', commit: repo.commit });
  // master is the payload's default branch: its push also moves latest.
  const sha7 = repo.commit.slice(0, 7);
  const image = `${registry.host}/hooks/github`;
  expect(answer.body.tags).toEqual([`${image}:master`, `${image}:sha-${sha7}`, `${image}:latest`]);

  const build = await farm.waitForBuild(answer.body.buildId);
  expect(build).toMatchObject({ status: 'succeeded', commit: repo.commit, ref: 'refs/heads/master' });
  for (const tag of answer.body.tags) {
    const index = await skopeoRaw(tag);
    expect(index.manifests.map((m: any) => m.platform.architecture)).toEqual(['amd64', 'arm64']);
    expect((await skopeoConfig(`${image}@${index.manifests[1].digest}`)).architecture).toBe('arm64');
  }

  // Statuses: one per platform and one for the manifest, pending first, success last.
  const path = `/repos/team/app/statuses/${repo.commit}`;
  await waitFor(
    async () =>
      forgeApi.requests.some(
        (r) => r.path === path && r.body.context === 'buildfarm/manifest' && r.body.state === 'success',
      ),
    30_000,
    () => JSON.stringify(forgeApi.requests),
  );
  const github = forgeApi.requests.filter((r) => r.path === path);
  for (const request of github) {
    expect(request.method).toBe('POST');
    expect(request.headers.authorization).toBe(`Bearer ${FORGE_TOKEN}`);
    expect(request.headers.accept).toBe('application/vnd.github+json');
    expect(request.body.target_url).toMatch(new RegExp(`/v1/builds/${build.id}$`));
  }
  for (const context of ['buildfarm/linux-amd64', 'buildfarm/linux-arm64', 'buildfarm/manifest']) {
    const states = github.filter((r) => r.body.context === context).map((r) => r.body.state);
    expect(states[0]).toBe('pending');
    expect(states[states.length - 1]).toBe('success');
  }
});

test('a GitLab tag push publishes under the tag name', async () => {
  const body = pushOf('gitlab/tag-push.json', repo.commit, ['checkout_sha']);
  const answer = await deliver('gitlab', 'Tag Push Hook', body);
  expect(answer.status).toBe(202);
  const image = `${registry.host}/hooks/gitlab`;
  // v22 is no semantic version: {version} and {major}.{minor} render to nothing.
  expect(answer.body.tags).toEqual([`${image}:v22`, `${image}:sha-${repo.commit.slice(0, 7)}`]);
  const build = await farm.waitForBuild(answer.body.buildId);
  expect(build).toMatchObject({ status: 'succeeded', commit: repo.commit, ref: 'refs/tags/v22' });
  expect((await skopeoRaw(`${image}:v22`)).manifests).toHaveLength(2);

  const path = `/api/v4/projects/team%2Fapp/statuses/${repo.commit}`;
  await waitFor(
    async () =>
      forgeApi.requests.some(
        (r) => r.path === path && r.body.name === 'buildfarm/manifest' && r.body.state === 'success',
      ),
    30_000,
    () => JSON.stringify(forgeApi.requests.map((r) => [r.path, r.body])),
  );
  expect(forgeApi.requests.find((r) => r.path === path)!.headers['private-token']).toBe(FORGE_TOKEN);
});

test('a Gitea tag creation publishes the semantic version tags', async () => {
  const body = pushOf('gitea/tag-push.json', repo.commit, ['sha']);
  const answer = await deliver('gitea', 'create', body);
  expect(answer.status).toBe(202);
  const image = `${registry.host}/hooks/gitea`;
  expect(answer.body.tags).toEqual([
    `${image}:v1.0.0`,
    `${image}:sha-${repo.commit.slice(0, 7)}`,
    `${image}:1.0.0`,
    `${image}:1.0`,
  ]);
  const build = await farm.waitForBuild(answer.body.buildId);
  expect(build.status).toBe('succeeded');
  const index = await skopeoRaw(`${image}:1.0`);
  expect(await skopeoRaw(`${image}:v1.0.0`)).toEqual(index);

  // Gitea also sends a `push` of refs/tags/v1.0.0 for the same new tag: it joins this build.
  const push = JSON.parse(fixture('gitea/push.json').toString());
  const tagPush = Buffer.from(JSON.stringify({ ...push, ref: 'refs/tags/v1.0.0', after: repo.commit }));
  const duplicate = await deliver('gitea', 'push', tagPush);
  expect(duplicate.status).toBe(200);
  expect(duplicate.body).toMatchObject({ outcome: 'duplicate', buildId: answer.body.buildId });

  const path = `/api/v1/repos/team/app/statuses/${repo.commit}`;
  await waitFor(
    async () =>
      forgeApi.requests.some(
        (r) => r.path === path && r.body.context === 'buildfarm/manifest' && r.body.state === 'success',
      ),
    30_000,
  );
  expect(forgeApi.requests.find((r) => r.path === path)!.headers.authorization).toBe(`token ${FORGE_TOKEN}`);
});

test.each([
  [
    'github',
    'push',
    'github/push-branch-created.json',
    '6113728f27ae82c7b1a177c8d03f9e96e0adf246',
    'refs/heads/master',
  ],
  ['gitlab', 'Push Hook', 'gitlab/push.json', '16862e368d8ab812e48833b741dad720d6e2cb7f', 'refs/heads/main'],
  ['gitea', 'push', 'gitea/push.json', 'ef98532add3b2feb7a137426bba1248724367df5', 'refs/heads/main'],
] as const)(
  'the unmodified %s push fixture builds exactly its pushed commit',
  async (forge, event, path, commit, ref) => {
    const answer = await deliver(forge, event, fixture(path));
    expect(answer.status).toBe(202);
    expect(answer.body.commit).toBe(commit);
    const build = await farm.waitForBuild(answer.body.buildId);
    expect(build).toMatchObject({ commit, ref });
    // That commit lives only in the forge's repository, not in the project's mirror: a clear
    // failure, without retries and without publishing anything.
    expect(build.status).toBe('failed');
    expect(build.platforms[0].error).toContain(`commit ${commit} is not in`);
    expect(build.platforms[0].attempts).toBe(1);
  },
);

test('pings, deletions and refs outside the filters build nothing and say why', async () => {
  const before = await buildsOfProject(projects.github);
  const ping = await deliver('github', 'ping', fixture('github/ping.json'));
  expect(ping).toMatchObject({ status: 200, body: { outcome: 'ping' } });
  const deleted = await deliver('github', 'push', fixture('github/push-tag-deleted.json'));
  expect(deleted.status).toBe(200);
  expect(deleted.body.outcome).toBe('ignored');
  expect(deleted.body.reason).toMatch(/delet/);
  const unsupported = await deliver('github', 'issues', fixture('github/ping.json'));
  expect(unsupported.body.outcome).toBe('ignored');
  expect(await buildsOfProject(projects.github)).toBe(before);

  const gitea = await deliver('gitea', 'push', fixture('gitea/push-branch-created.json'));
  expect(gitea.status).toBe(200);
  expect(gitea.body).toEqual({ outcome: 'ignored', reason: expect.stringContaining('fdsafdsa') });
});

test('the same delivery, again or several times at once, builds once and answers the same', async () => {
  const deliveryId = randomUUID();
  const body = fixture('gitlab/push.json');
  const before = await buildsOfProject(projects.gitlab);
  const headers = forgeHeaders('gitlab', 'Push Hook', body, SECRET, deliveryId);
  const answers = await Promise.all(Array.from({ length: 6 }, () => deliver('gitlab', 'Push Hook', body, headers)));
  const again = await deliver('gitlab', 'Push Hook', body, headers);
  const buildIds = new Set([...answers, again].map((a) => a.body.buildId));
  expect(buildIds.size).toBe(1);
  expect([...answers, again].map((a) => a.status)).toEqual(Array(7).fill(202));
  expect(again.headers.get('x-farm-delivery-replayed')).toBe('true');
  expect(await buildsOfProject(projects.gitlab)).toBe(before + 1);
});

test('bad signatures, unknown projects, malformed and oversized bodies are refused', async () => {
  const body = fixture('github/push-branch-created.json');
  const deliveriesBefore = (await farm.request('GET', `/v1/projects/${projects.github}/deliveries`)).body.deliveries
    .length;
  const buildsBefore = await buildsOfProject(projects.github);

  const wrong = await deliver('github', 'push', body, forgeHeaders('github', 'push', body, 'not-the-secret-at-all'));
  expect(wrong.status).toBe(401);
  expect(wrong.body.error.code).toBe('unauthorized');
  const { 'x-hub-signature-256': _signature, ...unsigned } = forgeHeaders('github', 'push', body, SECRET);
  expect((await deliver('github', 'push', body, unsigned)).status).toBe(401);
  const gitlabWrongToken = forgeHeaders('gitlab', 'Push Hook', fixture('gitlab/push.json'), 'wrong-token-0000000');
  expect((await deliver('gitlab', 'Push Hook', fixture('gitlab/push.json'), gitlabWrongToken)).status).toBe(401);
  // A body signed for another body does not pass either.
  const tampered = Buffer.from(body.toString().replace('master', 'evil'));
  expect((await deliver('github', 'push', tampered, forgeHeaders('github', 'push', body, SECRET))).status).toBe(401);

  const shown = (await farm.request('GET', `/v1/projects/${projects.github}`)).body;
  expect(shown.rejectedDeliveries).toBeGreaterThanOrEqual(3);
  const afterRefusals = (await farm.request('GET', `/v1/projects/${projects.github}/deliveries`)).body.deliveries;
  expect(afterRefusals.length).toBe(deliveriesBefore);

  const unknown = await fetch(`${farm.apiUrl}/v1/projects/${randomUUID()}/hooks/github`, {
    method: 'POST',
    headers: forgeHeaders('github', 'push', body, SECRET),
    body,
  });
  expect(unknown.status).toBe(404);
  expect((await deliver('github', 'push', body, forgeHeaders('github', 'push', body, SECRET))).status).toBe(202);

  const malformed = Buffer.from('{"ref": "refs/heads/main", ');
  const bad = await deliver('github', 'push', malformed);
  expect(bad.status).toBe(400);
  expect(bad.body.error).toMatchObject({ code: 'invalid_request', message: expect.stringContaining('malformed') });

  const huge = Buffer.alloc(26 * 1024 * 1024, 0x20);
  const tooLarge = await deliver('github', 'push', huge);
  expect(tooLarge.status).toBe(413);
  expect(tooLarge.body.error.code).toBe('payload_too_large');

  const deliveries = (await farm.request('GET', `/v1/projects/${projects.github}/deliveries`)).body.deliveries;
  expect(deliveries.map((d: any) => d.outcome)).toEqual(
    expect.arrayContaining(['invalid', 'build', 'ping', 'ignored']),
  );
  expect(deliveries[0]).toEqual(
    expect.objectContaining({ forge: 'github', event: 'push', outcome: 'invalid', httpStatus: 400 }),
  );
  expect(await buildsOfProject(projects.github)).toBe(buildsBefore + 1);
});

test('invalid projects are refused with the field named', async () => {
  const valid = {
    name: 'valid-name',
    repo: repo.url,
    image: `${registry.host}/x/y`,
    platforms: ['linux/amd64'],
    tags: ['{branch}'],
    webhookSecret: SECRET,
  };
  const cases: [Record<string, unknown>, string][] = [
    [{ tags: ['{nope}'] }, 'tags'],
    [{ image: `${registry.host}/x/y:1.0` }, 'image'],
    [{ platforms: ['linux/x86'] }, 'platforms[0]'],
    [{ webhookSecret: 'short' }, 'webhookSecret'],
    [{ branches: [''] }, 'branches'],
    [{ forgeToken: 'x' }, 'forge'],
    [{ name: 'Bad Name' }, 'name'],
  ];
  for (const [change, field] of cases) {
    const response = await farm.request('POST', '/v1/projects', { ...valid, ...change });
    expect([response.status, response.body.error?.field]).toEqual([400, field]);
  }
  const duplicate = await farm.request('POST', '/v1/projects', { ...valid, name: 'app-github' });
  expect(duplicate.status).toBe(409);

  const created = await farm.request('POST', '/v1/projects', valid);
  expect(created.status).toBe(201);
  const patched = await farm.request('PATCH', `/v1/projects/${created.body.id}`, { branches: ['release/*'] });
  expect(patched.body.branches).toEqual(['release/*']);
  expect((await farm.request('PATCH', `/v1/projects/${created.body.id}`, { tags: ['{bad'] })).status).toBe(400);
  expect((await farm.request('DELETE', `/v1/projects/${created.body.id}`)).status).toBe(204);
  expect((await farm.request('GET', `/v1/projects/${created.body.id}`)).status).toBe(404);
});
