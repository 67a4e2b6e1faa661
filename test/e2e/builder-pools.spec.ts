import { randomBytes } from 'node:crypto';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { publishJobId } from '@farm/queue';
import { pushBusyboxBase } from '../helpers/base-images';
import { createTestDatabase, type TestDatabase } from '../helpers/database';
import { slowDockerfile } from '../helpers/dockerfiles';
import { agentsByName as agentsOf, startFarm, waitFor, type TestFarm } from '../helpers/farm';
import { createGitRepo, type TestGitRepo } from '../helpers/git-repo';
import { skopeoRaw } from '../helpers/image-files';
import { startRegistry, type TestRegistry } from '../helpers/registry';

/**
 * Builder pools with real agents: registration and heartbeats, label routing, unschedulable
 * platforms, drain, a lost agent's build recovered by another, and an agent fenced by a Redis ACL.
 */

jest.setTimeout(240_000);

let registry: TestRegistry;
let database: TestDatabase;
let farm: TestFarm;
let repo: TestGitRepo;

async function submit(body: Record<string, unknown>): Promise<string> {
  const response = await farm.request('POST', '/v1/builds', {
    repo: repo.url,
    commit: repo.commit,
    // Every build runs its steps: a result cached from an earlier build would end before the fault.
    noCache: true,
    platforms: ['linux/amd64'],
    tags: [`${registry.host}/pools/app:${randomBytes(4).toString('hex')}`],
    ...body,
  });
  expect(response.status).toBe(202);
  return response.body.id;
}

const agentsByName = () => agentsOf(farm);

beforeAll(async () => {
  [registry, database] = await Promise.all([startRegistry(), createTestDatabase()]);
  const base = await pushBusyboxBase(registry.host);
  repo = await createGitRepo({
    Dockerfile: `FROM ${base}\nRUN uname -m > /arch\n`,
    // Long enough to kill its agent in the middle.
    'Dockerfile.slow': slowDockerfile(base, 6),
  });
  farm = await startFarm({
    databaseUrl: database.url,
    agents: [{ name: 'small-1' }, { name: 'small-2' }, { name: 'large-1', labels: ['large', 'ssd'] }],
  });
  await waitFor(
    async () => Object.keys(await agentsByName()).length === 3,
    20_000,
    () => farm.output(),
  );
});

afterAll(async () => {
  await farm?.stop();
  await Promise.all([registry?.stop(), database?.drop(), repo?.remove()]);
});

test('agents announce themselves and heartbeat', async () => {
  const agents = await agentsByName();
  expect(agents['large-1']).toMatchObject({
    id: 'large-1',
    platforms: ['linux/amd64'],
    emulated: false,
    labels: ['large', 'ssd'],
    backend: 'local',
    status: 'online',
    currentJobs: [],
    version: expect.stringMatching(/^\d+\.\d+\.\d+/),
  });
  const seen = Date.parse(agents['small-1'].lastSeenAt);
  await waitFor(async () => Date.parse((await agentsByName())['small-1'].lastSeenAt) > seen, 10_000);
});

test('a build that requires labels runs only on an agent carrying all of them', async () => {
  const ids = await Promise.all([submit({ requires: ['large'] }), submit({ requires: ['ssd', 'large'] })]);
  for (const id of ids) {
    const done = await farm.waitForBuild(id);
    expect(done.status).toBe('succeeded');
    expect(done.platforms[0].agent).toBe('large-1');
  }
});

test('a platform no online agent serves is unschedulable, then built once an agent for it starts', async () => {
  const id = await submit({ platforms: ['linux/amd64', 'linux/arm64'], requires: ['gpu'] });
  const waiting = await farm.waitForBuild(id, (b) => b.platforms.every((p: any) => p.status === 'unschedulable'));
  expect(waiting.status).toBe('queued');
  expect(waiting.platforms[1].statusReason).toBe('no online agent serves linux/arm64 with labels gpu');

  await farm.startAgent({ name: 'gpu-arm64', platform: 'linux/arm64', emulated: true, labels: ['gpu'] });
  await farm.startAgent({ name: 'gpu-amd64', labels: ['gpu'] });
  const done = await farm.waitForBuild(id);
  expect(done.status).toBe('succeeded');
  expect(done.platforms.map((p: any) => [p.agent, p.emulated])).toEqual([
    ['gpu-amd64', false],
    ['gpu-arm64', true],
  ]);
});

test('scheduleTimeout fails a platform nothing can build, with the reason, publishing nothing', async () => {
  const tag = `${registry.host}/pools/app:never`;
  const id = await submit({ requires: ['nowhere'], scheduleTimeout: 2, tags: [tag] });
  const done = await farm.waitForBuild(id);
  expect(done.status).toBe('failed');
  expect(done.platforms[0].status).toBe('failed');
  expect(done.platforms[0].error).toContain('no online agent serves linux/amd64 with labels nowhere');
  expect(done.platforms[0].error).toContain('scheduleTimeout of 2 s');
  expect(done.error).toContain('scheduleTimeout');
  expect((await fetch(`${registry.url}/v2/pools/app/manifests/never`, { method: 'HEAD' })).status).toBe(404);
});

test('a drained agent takes no new job until undrained', async () => {
  expect((await farm.request('POST', '/v1/agents/large-1/drain')).status).toBe(202);
  await waitFor(async () => (await agentsByName())['large-1'].status === 'draining', 10_000);

  const id = await submit({ requires: ['large'] });
  const waiting = await farm.waitForBuild(id, (b) => b.platforms[0].status === 'unschedulable');
  expect(waiting.platforms[0].statusReason).toContain('large-1 is draining');

  expect((await farm.request('POST', '/v1/agents/large-1/undrain')).status).toBe(202);
  const done = await farm.waitForBuild(id);
  expect(done.status).toBe('succeeded');
  expect(done.platforms[0].agent).toBe('large-1');
  expect((await farm.request('POST', '/v1/agents/no-such-agent/drain')).status).toBe(404);
});

test('SIGTERM drains an agent: its running build finishes, then it exits', async () => {
  const agent = await farm.startAgent({ name: 'leaving', labels: ['leaving'] });
  const id = await submit({ requires: ['leaving'], dockerfile: 'Dockerfile.slow' });
  await farm.waitForBuild(id, (b) => b.platforms[0].status === 'running');
  const exited = new Promise<number | null>((resolve) => agent.once('exit', (code) => resolve(code)));
  agent.kill('SIGTERM');
  const done = await farm.waitForBuild(id);
  expect(done.status).toBe('succeeded');
  expect(done.platforms[0].agent).toBe('leaving');
  expect(await exited).toBe(0);
  // A clean exit removes its registration.
  expect((await agentsByName()).leaving).toBeUndefined();
});

test('an agent killed mid-build loses nothing: another agent rebuilds it and it is published once', async () => {
  const tag = `${registry.host}/pools/app:recovered`;
  const id = await submit({ dockerfile: 'Dockerfile.slow', tags: [tag] });
  const running = await farm.waitForBuild(id, (b) => b.platforms[0].status === 'running' && b.platforms[0].agent);
  const victim = running.platforms[0].agent as string;
  const killedAt = Date.now();
  farm.agent(victim).kill('SIGKILL');

  const restarted = await farm.waitForBuild(
    id,
    (b) => b.platforms[0].agent !== victim && b.platforms[0].status === 'running',
  );
  const recoveredAfter = Date.now() - killedAt;
  const done = await farm.waitForBuild(id);
  const doneAfter = Date.now() - killedAt;
  // Silent for longer than its heartbeat timeout (10 s): offline, running nothing.
  await waitFor(async () => (await agentsByName())[victim].status === 'offline', 20_000);
  expect((await agentsByName())[victim].currentJobs).toEqual([]);
  expect(done.status).toBe('succeeded');
  expect(restarted.platforms[0].agent).not.toBe(victim);
  expect(done.platforms[0].attempts).toBe(2);
  // Lock 8 s + stalled check every 4 s: about 12 s at most. Reported, not asserted: timing
  // targets belong to the benchmark.
  console.log(`lost agent: restarted elsewhere after ${recoveredAfter} ms, build done after ${doneAfter} ms`);

  const index = await skopeoRaw(tag);
  expect(index.manifests).toHaveLength(1);
  expect(index.manifests[0].digest).toBe(done.platforms[0].digest);
  // Published exactly once: the publish job ran a single time.
  const redis = new Redis('redis://127.0.0.1:6379', { maxRetriesPerRequest: null });
  const publish = new Queue('publish', { connection: redis, prefix: farm.queuePrefix });
  try {
    const job = await publish.getJob(publishJobId(id));
    expect(await job!.getState()).toBe('completed');
    expect(job!.attemptsMade).toBe(1);
    expect(job!.stalledCounter).toBe(0);
  } finally {
    await publish.close();
    redis.disconnect();
  }
});

test('an agent fenced by a Redis ACL to the farm prefix builds, and can read nothing else', async () => {
  const user = `farmtest-acl-${randomBytes(4).toString('hex')}`;
  const password = randomBytes(16).toString('hex');
  const admin = new Redis('redis://127.0.0.1:6379');
  const prefix = farm.queuePrefix;
  // The README's recipe, with this test's prefix.
  await admin.call(
    'ACL',
    'SETUSER',
    user,
    'on',
    `>${password}`,
    `~${prefix}:*`,
    `&${prefix}:*`,
    '+@all',
    '-@admin',
    '-@dangerous',
    '+info',
  );
  const outside = `farmtest-outside-${randomBytes(4).toString('hex')}`;
  await admin.set(outside, 'secret');
  const fenced = new Redis(`redis://${user}:${password}@127.0.0.1:6379`);
  try {
    await expect(fenced.get(outside)).rejects.toThrow(/NOPERM/);
    await expect(fenced.keys('*')).rejects.toThrow(/NOPERM/);
    await farm.startAgent({
      name: 'acl-agent',
      labels: ['fenced'],
      env: { REDIS_URL: `redis://${user}:${password}@127.0.0.1:6379` },
    });
    const done = await farm.waitForBuild(await submit({ requires: ['fenced'] }));
    expect(done.status).toBe('succeeded');
    expect(done.platforms[0].agent).toBe('acl-agent');
  } finally {
    fenced.disconnect();
    farm.agent('acl-agent').kill('SIGKILL');
    await admin.del(outside);
    await admin.call('ACL', 'DELUSER', user);
    admin.disconnect();
  }
});
