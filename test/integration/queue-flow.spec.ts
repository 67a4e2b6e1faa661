import { randomUUID } from 'node:crypto';
import { FlowProducer, Queue, QueueEvents, UnrecoverableError, Worker, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import {
  buildFlow,
  buildQueueName,
  createRedisConnection,
  parsePlatformBuildJob,
  PUBLISH_QUEUE,
  publishJobId,
  type BuildForFlow,
} from '@farm/queue';

/** The job catalog against a real Redis, under a queue prefix of this test file's own. */

jest.setTimeout(30_000);

const prefix = `farmtest-flow-${randomUUID().slice(0, 8)}`;
let redis: Redis;
let flows: FlowProducer;

function sampleBuild(platforms = ['linux/amd64', 'linux/arm64']): BuildForFlow {
  return {
    buildId: randomUUID(),
    platforms,
    repo: 'https://example.com/team/app.git',
    commit: 'a'.repeat(40),
    dockerfile: 'Dockerfile',
    context: '.',
    buildArgs: {},
    labels: {},
    pushTo: { registry: '127.0.0.1:5000', repository: 'team/app' },
  };
}

beforeAll(() => {
  redis = createRedisConnection('redis://127.0.0.1:6379');
  flows = new FlowProducer({ connection: redis, prefix });
});

afterAll(async () => {
  await flows.close();
  const keys = await redis.keys(`${prefix}:*`);
  if (keys.length) await redis.del(...keys);
  redis.disconnect();
});

test('a build becomes a publish parent with one child per platform queue, all on the same commit', async () => {
  const build = sampleBuild(['linux/amd64', 'linux/arm64', 'linux/arm/v7']);
  const node = await flows.add(buildFlow(build));
  expect(node.job.queueName).toBe(PUBLISH_QUEUE);
  expect(node.job.id).toBe(publishJobId(build.buildId));
  expect(node.children?.map((child) => child.job.queueName)).toEqual([
    'build.linux.amd64',
    'build.linux.arm64',
    'build.linux.arm.v7',
  ]);
  for (const child of node.children ?? []) {
    expect(parsePlatformBuildJob(child.job.data).commit).toBe(build.commit);
  }
});

test('adding the same build twice does not create a second flow', async () => {
  const build = sampleBuild();
  await flows.add(buildFlow(build));
  await flows.add(buildFlow(build));
  const publish = new Queue(PUBLISH_QUEUE, { connection: redis, prefix });
  const amd64 = new Queue(buildQueueName('linux/amd64'), { connection: redis, prefix });
  try {
    const parents = (await publish.getJobs(['waiting-children'])).filter((j) => j.data.buildId === build.buildId);
    const children = (await amd64.getJobs(['wait'])).filter((j) => j.data.buildId === build.buildId);
    expect(parents).toHaveLength(1);
    expect(children).toHaveLength(1);
  } finally {
    await Promise.all([publish.close(), amd64.close()]);
  }
});

test('the parent runs once every child ended, and sees which succeeded and which failed', async () => {
  const build = sampleBuild();
  await flows.add(buildFlow(build));
  const handlers = (job: Job) => {
    // Unrecoverable: fails for good on the first attempt, as a failing Dockerfile does.
    if (job.data.platform === 'linux/arm64') throw new UnrecoverableError('RUN false exited 1');
    return Promise.resolve({ platform: job.data.platform });
  };
  const connection = createRedisConnection('redis://127.0.0.1:6379');
  const amd64 = new Worker(buildQueueName('linux/amd64'), handlers, { connection, prefix });
  const arm64 = new Worker(buildQueueName('linux/arm64'), handlers, { connection, prefix });
  const eventsConnection = connection.duplicate();
  const events = new QueueEvents(PUBLISH_QUEUE, { connection: eventsConnection, prefix });
  let seen: { values: Record<string, unknown>; failures: Record<string, string> } | undefined;
  const publish = new Worker(
    PUBLISH_QUEUE,
    async (job) => {
      seen = { values: await job.getChildrenValues(), failures: await job.getIgnoredChildrenFailures() };
      return 'done';
    },
    { connection, prefix },
  );
  try {
    await events.waitUntilReady();
    const queue = new Queue(PUBLISH_QUEUE, { connection, prefix });
    const parent = await queue.getJob(publishJobId(build.buildId));
    await parent!.waitUntilFinished(events, 30_000);
    await queue.close();
    expect(Object.values(seen!.values)).toEqual([{ platform: 'linux/amd64' }]);
    expect(Object.values(seen!.failures)).toEqual(['RUN false exited 1']);
  } finally {
    await Promise.all([amd64.close(), arm64.close(), publish.close(), events.close()]);
    // BullMQ leaves connections it was handed open.
    connection.disconnect();
    eventsConnection.disconnect();
  }
});
