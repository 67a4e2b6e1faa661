import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { buildQueueName, platformJobId, publishJobId } from '@farm/queue';
import { pushBusyboxBase } from '../helpers/base-images';
import { createTestDatabase, type TestDatabase } from '../helpers/database';
import { startFarm, waitFor, type TestFarm } from '../helpers/farm';
import { createGitRepo, type TestGitRepo } from '../helpers/git-repo';
import { skopeoRaw } from '../helpers/image-files';
import { startRegistry, type TestRegistry } from '../helpers/registry';

/**
 * Cancel and retry through the REST API against a real farm (PostgreSQL, Redis, registry,
 * buildah, a native amd64 agent and an emulated arm64 one): a queued build is canceled and its
 * job leaves the queue; a running build's buildah dies within seconds and nothing is
 * published; a failed build is retried, rebuilding only the failed platform and publishing an
 * index with the succeeded platform's original digest.
 */

jest.setTimeout(240_000);

const run = promisify(execFile);
const DIGEST = /^sha256:[0-9a-f]{64}$/;

let registry: TestRegistry;
let database: TestDatabase;
let farm: TestFarm;
let repo: TestGitRepo;
let redis: Redis;
let base: string;
/** Unique to this run, so that process searches never meet another test's builds. */
const marker = `cancel-me-${randomBytes(4).toString('hex')}`;
/** The arm64 stage's base: absent from the registry until the retry test pushes it. */
let gate: string;

beforeAll(async () => {
  [registry, database] = await Promise.all([startRegistry(), createTestDatabase()]);
  base = await pushBusyboxBase(registry.host);
  gate = `${registry.host}/gate/busybox:1`;
  repo = await createGitRepo({
    // The trailing echo keeps the RUN step's shell (whose argv has the marker) alive while it sleeps.
    'Dockerfile.sleep': `FROM ${base}\nRUN echo ${marker} && sleep 30 && echo ${marker} done\n`,
    'Dockerfile.quick': `FROM ${base}\nRUN uname -m > /arch\n`,
    // amd64 builds from the base; arm64 from the gate image, which does not exist at first.
    'Dockerfile.gate': [
      'ARG TARGETARCH',
      `FROM ${base} AS build-amd64`,
      'RUN echo amd64 > /which',
      `FROM ${gate} AS build-arm64`,
      'RUN echo arm64 > /which',
      'FROM build-${TARGETARCH}',
      'RUN uname -m > /arch',
      '',
    ].join('\n'),
  });
  farm = await startFarm({
    databaseUrl: database.url,
    agents: [{ name: 'native-amd64' }, { platform: 'linux/arm64', emulated: true, name: 'qemu-arm64' }],
  });
  redis = new Redis('redis://127.0.0.1:6379', { maxRetriesPerRequest: null });
});

afterAll(async () => {
  redis?.disconnect();
  await farm?.stop();
  await Promise.all([registry?.stop(), database?.drop(), repo?.remove()]);
});

async function submit(body: Record<string, unknown>): Promise<string> {
  const submitted = await farm.request('POST', '/v1/builds', { repo: repo.url, ref: 'main', ...body });
  expect(submitted.status).toBe(202);
  return submitted.body.id;
}

/** Command lines (NUL-separated argv joined by spaces) of every process whose argv contains `text`. */
async function processesWith(text: string): Promise<string[]> {
  const found: string[] = [];
  for (const pid of (await readdir('/proc')).filter((name) => /^\d+$/.test(name))) {
    const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
    if (cmdline.includes(text) && Number(pid) !== process.pid) found.push(cmdline.split('\0').join(' '));
  }
  return found;
}

/** The state of a job in the farm's queues, or 'gone'. */
async function jobState(queueName: string, jobId: string): Promise<string> {
  const queue = new Queue(queueName, { connection: redis, prefix: farm.queuePrefix });
  try {
    const job = await queue.getJob(jobId);
    return job ? await job.getState() : 'gone';
  } finally {
    await queue.close();
  }
}

async function tagExists(reference: string): Promise<boolean> {
  return skopeoRaw(reference).then(
    () => true,
    () => false,
  );
}

test('a queued build is canceled and leaves the queue; retried once an agent serves it, it succeeds', async () => {
  const tag = `${registry.host}/cancel/queued:1`;
  // No agent carries the label: the platform waits (queued, then unschedulable).
  const id = await submit({
    dockerfile: 'Dockerfile.quick',
    platforms: ['linux/amd64'],
    tags: [tag],
    requires: ['gpu'],
  });
  const queueName = buildQueueName('linux/amd64', ['gpu']);
  expect(await jobState(queueName, platformJobId(id, 'linux/amd64'))).toBe('waiting');

  const canceled = await farm.request('POST', `/v1/builds/${id}/cancel`);
  expect(canceled.status).toBe(202);
  expect(canceled.body).toMatchObject({ id, status: 'canceled', retries: 0, digest: null });
  expect(canceled.body.platforms[0]).toMatchObject({ platform: 'linux/amd64', status: 'canceled' });
  expect(canceled.body.finishedAt).not.toBeNull();
  // The job is gone from its queue, and the publish parent it held is released and ends.
  expect(await jobState(queueName, platformJobId(id, 'linux/amd64'))).toBe('gone');
  await waitFor(async () => (await jobState('publish', publishJobId(id))) === 'completed', 20_000, farm.output);
  expect((await farm.request('GET', `/v1/builds/${id}`)).body).toMatchObject({ status: 'canceled', digest: null });
  expect(await tagExists(tag)).toBe(false);

  // Only queued or running builds can be canceled; only failed or canceled ones retried.
  const again = await farm.request('POST', `/v1/builds/${id}/cancel`);
  expect(again.status).toBe(409);
  expect(again.body.error).toMatchObject({ code: 'conflict' });
  expect(again.body.error.message).toContain('canceled');
  const unknown = await farm.request('POST', '/v1/builds/00000000-0000-4000-8000-000000000000/cancel');
  expect(unknown.status).toBe(404);
  expect(unknown.body.error.code).toBe('not_found');
  expect((await farm.request('POST', '/v1/builds/not-an-id/retry')).status).toBe(404);
  expect((await farm.request('POST', `/v1/builds/${id}/cancel`, undefined, null)).status).toBe(401);

  await farm.startAgent({ name: 'gpu-amd64', labels: ['gpu'] });
  const retried = await farm.request('POST', `/v1/builds/${id}/retry`);
  expect(retried.status).toBe(202);
  expect(retried.body).toMatchObject({ id, status: 'queued', retries: 1, finishedAt: null, error: null });
  expect(retried.body.platforms[0]).toMatchObject({ status: 'queued', agent: null, error: null });
  // The retry's jobs have ids of their own: nothing of the first run is reused or collides.
  expect(await jobState(queueName, platformJobId(id, 'linux/amd64', 1))).not.toBe('gone');
  const concurrent = await farm.request('POST', `/v1/builds/${id}/retry`);
  expect(concurrent.status).toBe(409);

  const done = await farm.waitForBuild(id);
  expect(done).toMatchObject({ status: 'succeeded', retries: 1 });
  expect(done.platforms[0]).toMatchObject({ status: 'succeeded', agent: 'gpu-amd64' });
  expect(done.digest).toMatch(DIGEST);
  const index = await skopeoRaw(tag);
  expect(index.manifests.map((m: any) => m.digest)).toEqual([done.platforms[0].digest]);
  expect((await farm.request('POST', `/v1/builds/${id}/retry`)).status).toBe(409);
  expect((await farm.request('POST', `/v1/builds/${id}/cancel`)).status).toBe(409);
});

test('a running build is canceled: its buildah is killed within seconds, its container removed, nothing published', async () => {
  const tag = `${registry.host}/cancel/running:1`;
  const id = await submit({ dockerfile: 'Dockerfile.sleep', platforms: ['linux/amd64'], tags: [tag] });

  // The RUN step runs (its echo is a line of the log) and the live view knows which step it is.
  await waitFor(
    async () =>
      (await farm.request('GET', `/v1/builds/${id}/logs?platform=linux/amd64`)).body.split('\n').includes(marker),
    120_000,
    farm.output,
  );
  const running = await farm.waitForBuild(id, (b) => b.platforms[0].progress?.step === 2);
  expect(running.platforms[0]).toMatchObject({
    status: 'running',
    progress: { phase: 'building', step: 2, stage: null, stages: null },
  });
  // buildah counts the labels the farm adds as steps of their own: the total is its own.
  const { steps } = running.platforms[0].progress;
  const log = (await farm.request('GET', `/v1/builds/${id}/logs?platform=linux/amd64`)).body;
  expect(log).toContain(`STEP 2/${steps}: RUN echo ${marker}`);
  const buildah = (await processesWith(id)).find((cmdline) => cmdline.includes(' bud '));
  expect(buildah).toBeDefined();
  expect(await processesWith(marker)).not.toEqual([]);
  const storage = /--root (\S+) --runroot (\S+)/.exec(buildah!)!;

  const canceledAt = Date.now();
  const canceled = await farm.request('POST', `/v1/builds/${id}/cancel`);
  expect(canceled.status).toBe(202);
  expect(canceled.body).toMatchObject({ status: 'canceled', platforms: [{ status: 'canceled', progress: null }] });

  // buildah and the RUN step's processes are gone within seconds (the RUN would sleep 30 s).
  await waitFor(
    async () => (await processesWith(id)).length === 0,
    10_000,
    () => 'buildah still runs',
  );
  await waitFor(
    async () => (await processesWith(marker)).length === 0,
    10_000,
    () => 'the RUN step still runs',
  );
  console.log(`cancel: buildah and its RUN step gone ${Date.now() - canceledAt} ms after the request`);
  // The killed build's working container is removed from the agent's storage.
  const containers = async () =>
    (
      await run('buildah', [
        '--root',
        storage[1],
        '--runroot',
        storage[2],
        '--storage-driver',
        'overlay',
        'containers',
        '-q',
      ])
    ).stdout.trim();
  await waitFor(
    async () => (await containers()) === '',
    15_000,
    () => 'a working container is left',
  );

  // The agent reported the cancel and the coordinator ran the publish parent: nothing published.
  await waitFor(
    async () =>
      (await farm.request('GET', `/v1/builds/${id}/logs?platform=linux/amd64`)).body.includes('[farm] canceled'),
    20_000,
    farm.output,
  );
  await waitFor(async () => (await jobState('publish', publishJobId(id))) === 'completed', 20_000, farm.output);
  const ended = (await farm.request('GET', `/v1/builds/${id}`)).body;
  expect(ended).toMatchObject({ status: 'canceled', digest: null, mediaType: null });
  expect(ended.platforms[0]).toMatchObject({ status: 'canceled', digest: null });
  expect(await tagExists(tag)).toBe(false);
  // Not retried by BullMQ: one attempt, failed for good.
  const job = platformJobId(id, 'linux/amd64');
  expect(await jobState(buildQueueName('linux/amd64'), job)).toBe('failed');

  // The agent goes on building.
  const next = await submit({ dockerfile: 'Dockerfile.quick', platforms: ['linux/amd64'], tags: [`${tag}-next`] });
  expect((await farm.waitForBuild(next)).status).toBe('succeeded');
});

test('a failed build is retried: only the failed platform is rebuilt, the index reuses the other digest', async () => {
  const tag = `${registry.host}/retry/app:1`;
  const id = await submit({ dockerfile: 'Dockerfile.gate', platforms: ['linux/amd64', 'linux/arm64'], tags: [tag] });
  const failed = await farm.waitForBuild(id);
  expect(failed.status).toBe('failed');
  const [amd64, arm64] = failed.platforms;
  expect(amd64).toMatchObject({ platform: 'linux/amd64', status: 'succeeded' });
  expect(amd64.digest).toMatch(DIGEST);
  expect(arm64).toMatchObject({ platform: 'linux/arm64', status: 'failed' });
  expect(await tagExists(tag)).toBe(false);

  // What the arm64 stage lacked now exists: the same commit builds on a retry.
  await run('skopeo', [
    'copy',
    '--all',
    '--src-tls-verify=false',
    '--dest-tls-verify=false',
    `docker://${base}`,
    `docker://${gate}`,
  ]);
  const retried = await farm.request('POST', `/v1/builds/${id}/retry`);
  expect(retried.status).toBe(202);
  expect(retried.body).toMatchObject({ status: 'queued', retries: 1, digest: null, error: null });
  // The succeeded platform is kept as it was; the failed one starts over.
  expect(retried.body.platforms[0]).toEqual({ ...amd64, progress: null });
  expect(retried.body.platforms[1]).toMatchObject({ status: 'queued', digest: null, error: null, attempts: 0 });

  const done = await farm.waitForBuild(id);
  expect(done).toMatchObject({ status: 'succeeded', retries: 1 });
  expect(done.platforms[0]).toEqual({ ...amd64, progress: null });
  expect(done.platforms[1]).toMatchObject({ status: 'succeeded', agent: 'qemu-arm64', emulated: true });
  expect(await jobState(buildQueueName('linux/amd64'), platformJobId(id, 'linux/amd64', 1))).toBe('gone');

  const index = await skopeoRaw(tag);
  expect(index.manifests.map((m: any) => [m.platform.architecture, m.digest])).toEqual([
    ['amd64', amd64.digest],
    ['arm64', done.platforms[1].digest],
  ]);
  // Both runs' publish parents ended (the build ends just before its publish job completes).
  expect(await jobState('publish', publishJobId(id))).toBe('completed');
  await waitFor(async () => (await jobState('publish', publishJobId(id, 1))) === 'completed', 10_000, farm.output);
  // The log says where the retry began.
  const log = (await farm.request('GET', `/v1/builds/${id}/logs?platform=linux/arm64`)).body;
  expect(log).toContain('[farm] retry 1 of this build');
});
