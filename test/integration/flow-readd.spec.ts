import { randomUUID } from 'node:crypto';
import { FlowProducer, Queue, UnrecoverableError, Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import { waitFor } from '../helpers/farm';
import { buildFlow, buildQueueName, createRedisConnection, PUBLISH_QUEUE, publishJobId } from '@farm/queue';

/**
 * Why the coordinator's reconciler adds a build's flow only when its parent job does not exist
 * (apps/coordinator/src/reconciler.ts), on a real Redis: BullMQ ignores a second add of a job
 * id, but a flow added again re-links each existing child to the parent, and a child that
 * already failed (ignored by the parent) becomes a pending dependency again, so the parent
 * would wait for it forever.
 */

jest.setTimeout(30_000);

const prefix = `farmtest-readd-${randomUUID().slice(0, 8)}`;
let redis: Redis;
let flows: FlowProducer;

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

test('a flow added again after a child failed makes its parent wait for that child forever', async () => {
  const build = {
    buildId: randomUUID(),
    platforms: ['linux/amd64', 'linux/arm64'],
    repo: 'https://example.com/team/app.git',
    commit: 'a'.repeat(40),
    dockerfile: 'Dockerfile',
    context: '.',
    buildArgs: {},
    labels: {},
    pushTo: { registry: '127.0.0.1:5000', repository: 'team/app' },
  };
  await flows.add(buildFlow(build));
  const connection = createRedisConnection('redis://127.0.0.1:6379');
  const publish = new Queue(PUBLISH_QUEUE, { connection, prefix });
  const arm64 = new Worker(
    buildQueueName('linux/arm64'),
    () => Promise.reject(new UnrecoverableError('RUN false exited 1')),
    { connection, prefix },
  );
  let amd64: Worker | undefined;
  try {
    const parent = () => publish.getJob(publishJobId(build.buildId));
    await waitFor(async () => (await (await parent())!.getDependenciesCount()).ignored === 1, 10_000);
    expect(await publish.getJobState(publishJobId(build.buildId))).toBe('waiting-children');

    // The parent exists: this add is what the reconciler must not do.
    await flows.add(buildFlow(build));
    expect(await (await parent())!.getDependenciesCount()).toMatchObject({ unprocessed: 2 });

    amd64 = new Worker(buildQueueName('linux/amd64'), () => Promise.resolve({ ok: true }), { connection, prefix });
    await waitFor(async () => (await (await parent())!.getDependenciesCount()).processed === 1, 10_000);
    await new Promise((resolve) => setTimeout(resolve, 500));
    // Every child has ended, yet the parent still waits: for the failed child, re-linked.
    expect(await (await parent())!.getDependenciesCount()).toMatchObject({ unprocessed: 1, processed: 1 });
    expect(await publish.getJobState(publishJobId(build.buildId))).toBe('waiting-children');
  } finally {
    await Promise.all([arm64.close(), amd64?.close(), publish.close()]);
    connection.disconnect();
  }
});
