import { randomBytes } from 'node:crypto';
import { pushBusyboxBase } from '../helpers/base-images';
import { createTestDatabase, type TestDatabase } from '../helpers/database';
import { slowDockerfile } from '../helpers/dockerfiles';
import { agentsByName, startFarm, waitFor, type TestFarm } from '../helpers/farm';
import { createGitRepo, type TestGitRepo } from '../helpers/git-repo';
import { startRegistry, type TestRegistry } from '../helpers/registry';

/**
 * Cache affinity with two real agents of one platform: a repository's builds go to the agent
 * that built it last while that agent is free, and to the other one, without waiting, while
 * it is busy.
 */

jest.setTimeout(240_000);

let registry: TestRegistry;
let database: TestDatabase;
let farm: TestFarm;
let repo: TestGitRepo;
let edits = 0;

/** Builds `dockerfile` of a new commit of the repository (so no earlier result is reused). */
async function submit(dockerfile = 'Dockerfile'): Promise<string> {
  edits += 1;
  const commit = await repo.commitFiles({ 'hello.txt': `edit ${edits}\n` });
  const response = await farm.request('POST', '/v1/builds', {
    repo: repo.url,
    commit,
    dockerfile,
    platforms: ['linux/amd64'],
    tags: [`${registry.host}/affinity/app:${randomBytes(4).toString('hex')}`],
  });
  expect(response.status).toBe(202);
  return response.body.id;
}

async function builtBy(id: string): Promise<string> {
  const build = await farm.waitForBuild(id);
  expect(build.status).toBe('succeeded');
  return build.platforms[0].agent;
}

beforeAll(async () => {
  [registry, database] = await Promise.all([startRegistry(), createTestDatabase()]);
  const base = await pushBusyboxBase(registry.host);
  repo = await createGitRepo({
    Dockerfile: `FROM ${base}\nCOPY hello.txt /hello.txt\n`,
    // Keeps its agent busy long enough to submit another build meanwhile.
    'Dockerfile.slow': `${slowDockerfile(base, 8)}COPY hello.txt /hello.txt\n`,
    'hello.txt': 'edit 0\n',
  });
  farm = await startFarm({ databaseUrl: database.url, agents: [{ name: 'pool-1' }, { name: 'pool-2' }] });
  await waitFor(
    async () => Object.keys(await agentsByName(farm)).length === 2,
    20_000,
    () => farm.output(),
  );
});

afterAll(async () => {
  await farm?.stop();
  await Promise.all([registry?.stop(), database?.drop(), repo?.remove()]);
});

test('while it is free, the agent that built a repository last builds it again', async () => {
  const first = await builtBy(await submit());
  // Both agents are idle between these builds: without affinity either could take each one.
  for (let i = 0; i < 6; i++) expect(await builtBy(await submit())).toBe(first);
});

test('a build does not wait for its busy affine agent: the other agent takes it', async () => {
  const slow = await submit('Dockerfile.slow');
  let busy = '';
  await waitFor(
    async () => {
      const agents = Object.values(await agentsByName(farm));
      busy = agents.find((agent: any) => agent.currentJobs.some((job: any) => job.buildId === slow))?.name ?? '';
      return busy !== '';
    },
    30_000,
    () => farm.output(),
  );

  const quick = await submit();
  const quickBuild = await farm.waitForBuild(quick);
  expect(quickBuild.status).toBe('succeeded');
  expect(quickBuild.platforms[0].agent).not.toBe(busy);
  // It ended while the affine agent was still on the slow build: it never waited for it.
  const slowBuild = await farm.waitForBuild(slow);
  expect(slowBuild.platforms[0].agent).toBe(busy);
  expect(Date.parse(quickBuild.finishedAt)).toBeLessThan(Date.parse(slowBuild.platforms[0].finishedAt));
});
