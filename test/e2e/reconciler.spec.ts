import { randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { Client } from 'pg';
import { pushBusyboxBase } from '../helpers/base-images';
import { createTestDatabase, type TestDatabase } from '../helpers/database';
import { archDockerfile } from '../helpers/dockerfiles';
import { startFarm, waitFor, type TestFarm } from '../helpers/farm';
import { createGitRepo, type TestGitRepo } from '../helpers/git-repo';
import { freePort } from '../helpers/ports';
import { startRegistry, type TestRegistry } from '../helpers/registry';

/**
 * The coordinator's reconciler and the flow policy, through real processes (api, coordinator,
 * a native amd64 agent), PostgreSQL, Redis, buildah and a registry. Faults are set up the way
 * they happen: a build row whose enqueue never ran, a build row deleted under its flow, a
 * flow gone from Redis, a final state that was never written.
 */

jest.setTimeout(240_000);

let registry: TestRegistry;
let database: TestDatabase;
let farm: TestFarm;
let repo: TestGitRepo;
let db: Client;
let redis: Redis;
let publish: Queue;
let unservedQueue: Queue;
let amd64Queue: Queue;

/** A platform no agent of this farm serves: its job waits in its queue. */
const UNSERVED = 'linux/s390x';

beforeAll(async () => {
  [registry, database] = await Promise.all([startRegistry(), createTestDatabase()]);
  const base = await pushBusyboxBase(registry.host);
  repo = await createGitRepo({ Dockerfile: archDockerfile(base), 'hello.txt': 'reconciled\n' });
  farm = await startFarm({ databaseUrl: database.url, agents: [{ name: 'amd64' }] });
  db = new Client({ connectionString: database.url });
  await db.connect();
  redis = new Redis('redis://127.0.0.1:6379', { maxRetriesPerRequest: null });
  publish = new Queue('publish', { connection: redis, prefix: farm.queuePrefix });
  unservedQueue = new Queue('build.linux.s390x', { connection: redis, prefix: farm.queuePrefix });
  amd64Queue = new Queue('build.linux.amd64', { connection: redis, prefix: farm.queuePrefix });
});

afterAll(async () => {
  await Promise.all([publish?.close(), unservedQueue?.close(), amd64Queue?.close()]);
  redis?.disconnect();
  await db?.end();
  await farm?.stop();
  await Promise.all([registry?.stop(), database?.drop(), repo?.remove()]);
});

const request = (tag: string, platforms = ['linux/amd64'], extra: Record<string, unknown> = {}) => ({
  repo: repo.url,
  commit: repo.commit,
  platforms,
  tags: [`${registry.host}/reconciled/app:${tag}`],
  ...extra,
});

async function submit(body: unknown): Promise<string> {
  const answer = await farm.request('POST', '/v1/builds', body);
  expect(answer.status).toBe(202);
  return answer.body.id;
}

const linesOf = (text: string) =>
  farm
    .output()
    .split('\n')
    .filter((line) => line.includes(text));

describe('crash between the database write and the enqueue', () => {
  test('a build row stored without its flow is enqueued once and built once', async () => {
    // What BuildSubmitter writes before it adds the flow, and nothing else: the api "died" here.
    const id = randomUUID();
    const tag = `${registry.host}/reconciled/app:orphan-row`;
    await db.query(
      `INSERT INTO "Build" ("id", "repo", "ref", "commit", "dockerfile", "context", "tags", "buildArgs", "labels", "requires")
       VALUES ($1, $2, 'main', $3, 'Dockerfile', '.', $4, '{}', '{}', '{}')`,
      [id, repo.url, repo.commit, [tag]],
    );
    await db.query(`INSERT INTO "PlatformBuild" ("buildId", "platform", "position") VALUES ($1, 'linux/amd64', 0)`, [
      id,
    ]);

    const build = await farm.waitForBuild(id);
    expect(build.status).toBe('succeeded');
    expect(build.digest).toMatch(/^sha256:/);
    expect(build.platforms).toEqual([expect.objectContaining({ status: 'succeeded', attempts: 1, agent: 'amd64' })]);
    const { rows } = await db.query('SELECT "enqueuedAt" FROM "Build" WHERE "id" = $1', [id]);
    expect(rows[0].enqueuedAt).not.toBeNull();

    // Once: one flow (its ids derive from the build), one attempt, one reconciler action.
    expect((await amd64Queue.getJob(`build-${id}-linux-amd64`))?.attemptsMade).toBe(1);
    expect(await publish.getJobState(`publish-${id}`)).toBe('completed');
    // A few more passes change nothing.
    await new Promise((resolve) => setTimeout(resolve, 6_000));
    expect(linesOf(`build ${id} was accepted but never enqueued`)).toHaveLength(1);
    expect((await farm.request('GET', `/v1/builds/${id}`)).body).toMatchObject({
      status: 'succeeded',
      digest: build.digest,
    });
    const index = await fetch(`${registry.url}/v2/reconciled/app/manifests/orphan-row`, {
      headers: { accept: 'application/vnd.oci.image.index.v1+json' },
    });
    expect(index.status).toBe(200);
    expect(index.headers.get('docker-content-digest')).toBe(build.digest);
  });

  test('a queued build whose flow is gone from Redis gets it back, once', async () => {
    const id = await submit(request('lost-flow', [UNSERVED]));
    const flow = await publish.getJob(`publish-${id}`);
    expect(flow).toBeDefined();
    await flow!.remove();
    expect(await unservedQueue.getJobState(`build-${id}-linux-s390x`)).toBe('unknown');

    await waitFor(async () => (await publish.getJobState(`publish-${id}`)) === 'waiting-children', 30_000);
    expect(await unservedQueue.getJobState(`build-${id}-linux-s390x`)).toBe('waiting');
    await new Promise((resolve) => setTimeout(resolve, 6_000));
    expect(linesOf(`build ${id} was queued without a flow in Redis`)).toHaveLength(1);
    expect((await farm.request('GET', `/v1/builds/${id}`)).body.status).toBe('queued');
  });
});

test('a flow whose build row was deleted is removed with its children, and logged', async () => {
  const id = await submit(request('deleted-row', [UNSERVED]));
  expect(await publish.getJobState(`publish-${id}`)).toBe('waiting-children');
  await db.query('DELETE FROM "Build" WHERE "id" = $1', [id]);

  // Dropped once the flow is older than the grace for uncommitted transactions (30 s).
  await waitFor(
    async () => (await publish.getJobState(`publish-${id}`)) === 'unknown',
    60_000,
    () => farm.output(),
  );
  expect(await unservedQueue.getJobState(`build-${id}-linux-s390x`)).toBe('unknown');
  expect(linesOf(`dropped the flow publish-${id} of build ${id}: the build no longer exists`)).toHaveLength(1);
});

describe('a build left running after its platforms ended', () => {
  test('its lost final write is repaired by publishing again: same index, succeeded', async () => {
    const id = await submit(request('lost-final-write'));
    const built = await farm.waitForBuild(id);
    expect(built.status).toBe('succeeded');
    // As if PostgreSQL had been unreachable when the publish recorded its outcome.
    await db.query(
      `UPDATE "Build" SET "status" = 'running', "digest" = NULL, "mediaType" = NULL, "finishedAt" = NULL WHERE "id" = $1`,
      [id],
    );

    const repaired = await farm.waitForBuild(id, (b) => b.status !== 'running');
    expect(repaired).toMatchObject({ status: 'succeeded', digest: built.digest, mediaType: built.mediaType });
    expect(linesOf(`build ${id} was still running after its publish job completed`)).toHaveLength(1);
  });

  test('a publish that failed for good, unrecorded, fails the build with its reason', async () => {
    // The second tag's registry refuses every request: the publish fails after its attempts (~15 s).
    const refusing = createServer((_req, res) => {
      res.writeHead(403, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ errors: [{ code: 'DENIED', message: 'refused by the test registry' }] }));
    });
    await new Promise<void>((resolve) => refusing.listen(0, '127.0.0.1', resolve));
    const { port } = refusing.address() as AddressInfo;
    const id = await submit({
      ...request('unpublishable'),
      tags: [`${registry.host}/reconciled/app:unpublishable`, `127.0.0.1:${port}/reconciled/app:unpublishable`],
    });
    const failed = await farm.waitForBuild(id);
    expect(failed.status).toBe('failed');
    expect(failed.error).toMatch(/^publishing the index failed: /);
    expect(await publish.getJobState(`publish-${id}`)).toBe('failed');
    await db.query(`UPDATE "Build" SET "status" = 'running', "error" = NULL, "finishedAt" = NULL WHERE "id" = $1`, [
      id,
    ]);

    const repaired = await farm.waitForBuild(id, (b) => b.status !== 'running');
    expect(repaired.status).toBe('failed');
    expect(repaired.error).toBe(failed.error);
    expect(repaired.platforms[0]).toMatchObject({ status: 'succeeded', digest: failed.platforms[0].digest });
    expect(linesOf(`build ${id}: its publish job had failed unrecorded`)).toHaveLength(1);
    refusing.close();
  });

  test('a running build whose jobs are gone from Redis fails with the reason instead of running forever', async () => {
    const id = await submit(request('lost-running', [UNSERVED]));
    await db.query(`UPDATE "Build" SET "status" = 'running' WHERE "id" = $1`, [id]);
    await (await publish.getJob(`publish-${id}`))!.remove();

    const ended = await farm.waitForBuild(id, (b) => b.status !== 'running');
    expect(ended.status).toBe('failed');
    expect(ended.error).toContain(`jobs are gone from the queue while ${UNSERVED} had not ended`);
    // Not enqueued again: the build ended.
    expect(await publish.getJobState(`publish-${id}`)).toBe('unknown');
  });
});

describe('flow parents never wait forever', () => {
  /** Polls the build; returns how long it stayed unfinished after its last platform ended. */
  async function lagAfterPlatformsEnded(id: string): Promise<{ build: any; lagMs: number }> {
    let allEndedAt: number | undefined;
    const build = await farm.waitForBuild(id, (shown) => {
      const ended = shown.platforms.every((p: any) => ['succeeded', 'failed', 'canceled'].includes(p.status));
      if (ended) allEndedAt ??= Date.now();
      return shown.finishedAt !== null;
    });
    return { build, lagMs: Date.now() - (allEndedAt ?? Date.now()) };
  }

  test('a platform that can never be scheduled fails; the parent runs and fails the build, publishing nothing', async () => {
    const id = await submit(request('never-scheduled', ['linux/amd64', UNSERVED], { scheduleTimeout: 2 }));
    const { build, lagMs } = await lagAfterPlatformsEnded(id);
    expect(build.status).toBe('failed');
    expect(build.error).toContain(`${UNSERVED}: no online agent serves ${UNSERVED}`);
    expect(build.platforms[0]).toMatchObject({ platform: 'linux/amd64', status: 'succeeded' });
    expect(build.platforms[0].digest).toMatch(/^sha256:/);
    expect(build.platforms[1]).toMatchObject({ platform: UNSERVED, status: 'failed' });
    expect(lagMs).toBeLessThan(10_000);
    // Policy: nothing is published unless every platform succeeded.
    const tag = await fetch(`${registry.url}/v2/reconciled/app/manifests/never-scheduled`, { method: 'HEAD' });
    expect(tag.status).toBe(404);
  });

  test('a platform that fails after all its attempts releases the parent, which fails the build', async () => {
    // Pushed by digest to the first tag's registry, which does not listen: every attempt fails.
    const nowhere = `127.0.0.1:${await freePort()}`;
    const id = await submit({ ...request('unpushable'), tags: [`${nowhere}/reconciled/app:unpushable`] });
    const { build, lagMs } = await lagAfterPlatformsEnded(id);
    expect(build.status).toBe('failed');
    expect(build.platforms[0].status).toBe('failed');
    expect(build.error).toContain('linux/amd64: ');
    expect(lagMs).toBeLessThan(10_000);
  });
});
