import { randomUUID } from 'node:crypto';
import { BuildRepository, PrismaService, type NewBuild } from '@farm/db';
import { createTestDatabase, type TestDatabase } from '../helpers/database';

/**
 * The BuildRepository statements on every build's critical path are single raw SQL statements
 * (create, platformStarted, claimPublish, finish), on a real PostgreSQL: they must store and
 * guard exactly what the Prisma queries they replaced did.
 */

jest.setTimeout(60_000);

let database: TestDatabase;
let prisma: PrismaService;
let builds: BuildRepository;

beforeAll(async () => {
  database = await createTestDatabase();
  prisma = new PrismaService(database.url);
  builds = new BuildRepository(prisma);
});

afterAll(async () => {
  await prisma?.$disconnect();
  await database?.drop();
});

function newBuild(overrides: Partial<NewBuild> = {}): NewBuild {
  return {
    id: randomUUID(),
    repo: 'https://example.com/team/app.git',
    ref: 'main',
    commit: 'a'.repeat(40),
    dockerfile: 'Dockerfile',
    context: '.',
    target: null,
    tags: ['127.0.0.1:5000/team/app:1', '127.0.0.1:5000/team/app:latest'],
    buildArgs: { VERSION: '1', 'a key': 'a "quoted" value' },
    labels: { team: 'platform' },
    platforms: ['linux/amd64', 'linux/arm64', 'linux/arm/v7'],
    requires: ['large'],
    scheduleTimeout: 30,
    ...overrides,
  };
}

const started = (at = new Date()) => ({ agent: 'agent-1', emulated: true, attempt: 2, at });

test('create stores exactly the rows it returns, platforms in the order asked for', async () => {
  const returned = await builds.create(newBuild({ secrets: 'sealed', noCache: true, enqueuedAt: new Date() }));
  const stored = await builds.find(returned.id);
  expect(stored).toEqual(returned);
  expect(stored!.platforms.map((p) => [p.platform, p.position, p.status])).toEqual([
    ['linux/amd64', 0, 'queued'],
    ['linux/arm64', 1, 'queued'],
    ['linux/arm/v7', 2, 'queued'],
  ]);

  const plain = await builds.create(newBuild({ requires: undefined, scheduleTimeout: undefined, ref: null }));
  expect(await builds.find(plain.id)).toEqual(plain);
  expect(plain).toMatchObject({ requires: [], scheduleTimeout: null, noCache: false, enqueuedAt: null });
});

test('createOnce: a second build under the same idempotency key is refused and rolled back', async () => {
  const key = `key-${randomUUID()}`;
  const first = await builds.createOnce({ ...newBuild(), idempotencyKey: key, idempotencyHash: 'h' }, async () => {});
  expect(first).toBeDefined();
  let enqueued = 0;
  const second = newBuild();
  const refused = await builds.createOnce({ ...second, idempotencyKey: key, idempotencyHash: 'h' }, async () => {
    enqueued++;
  });
  expect(refused).toBeUndefined();
  expect(enqueued).toBe(0);
  expect(await builds.find(second.id)).toBeNull();
});

test('createQueued stores nothing when the enqueue fails', async () => {
  const build = newBuild();
  await expect(builds.createQueued(build, () => Promise.reject(new Error('Redis is gone')))).rejects.toThrow(
    'Redis is gone',
  );
  expect(await builds.find(build.id)).toBeNull();
  expect(await prisma.platformBuild.count({ where: { buildId: build.id } })).toBe(0);
});

test('platformStarted runs the platform and the build, only within the run it names', async () => {
  const { id } = await builds.create(newBuild());
  const at = new Date('2026-01-02T03:04:05.678Z');
  expect(await builds.platformStarted(id, 'linux/arm64', started(at), 1)).toBe(false);
  expect((await builds.find(id))!.status).toBe('queued');

  expect(await builds.platformStarted(id, 'linux/arm64', started(at), 0)).toBe(true);
  const build = (await builds.find(id))!;
  expect(build).toMatchObject({ status: 'running', startedAt: at });
  expect(build.platforms[1]).toMatchObject({ status: 'running', agent: 'agent-1', emulated: true, attempts: 2 });
  expect(build.platforms[0].status).toBe('queued');

  // A later start (another attempt) keeps the build's start; an ended platform is left alone.
  expect(await builds.platformStarted(id, 'linux/amd64', started(new Date(at.getTime() + 1000)))).toBe(true);
  expect((await builds.find(id))!.startedAt).toEqual(at);
  await builds.platformEnded(id, 'linux/amd64', { status: 'succeeded', finishedAt: new Date() });
  expect(await builds.platformStarted(id, 'linux/amd64', started())).toBe(false);
});

test('claimPublish claims a build of the run once it has not ended, and returns what the index needs', async () => {
  const { id } = await builds.create(newBuild());
  await builds.platformEnded(id, 'linux/arm64', {
    status: 'succeeded',
    digest: `sha256:${'b'.repeat(64)}`,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    size: 1234,
    finishedAt: new Date(),
  });
  expect(await builds.claimPublish(id, 1)).toBeUndefined();
  expect(await builds.claimPublish(randomUUID(), 0)).toBeUndefined();

  const claim = await builds.claimPublish(id, 0);
  expect(claim).toEqual({
    id,
    repo: 'https://example.com/team/app.git',
    commit: 'a'.repeat(40),
    contextDigest: null,
    tags: ['127.0.0.1:5000/team/app:1', '127.0.0.1:5000/team/app:latest'],
    requires: ['large'],
    platforms: [
      { platform: 'linux/amd64', status: 'queued', digest: null, mediaType: null, size: null },
      {
        platform: 'linux/arm64',
        status: 'succeeded',
        digest: `sha256:${'b'.repeat(64)}`,
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        size: 1234,
      },
      { platform: 'linux/arm/v7', status: 'queued', digest: null, mediaType: null, size: null },
    ],
  });
  // Claimed: a cancel is refused from now on.
  expect((await builds.find(id))!.publishingAt).not.toBeNull();
  expect(await builds.cancel(id, 0)).toBeUndefined();

  // A canceled build is never claimed.
  const canceled = await builds.create(newBuild());
  expect(await builds.cancel(canceled.id, 0)).toEqual(['linux/amd64', 'linux/arm64', 'linux/arm/v7']);
  expect(await builds.claimPublish(canceled.id, 0)).toBeUndefined();
});

test('finish ends the build of its run once, keeping what the outcome leaves out', async () => {
  const { id } = await builds.create(newBuild());
  const at = new Date('2026-01-02T03:04:05.678Z');
  await builds.platformStarted(id, 'linux/amd64', started(at));

  await builds.finish(id, { status: 'succeeded', digest: `sha256:${'c'.repeat(64)}` }, 1);
  expect((await builds.find(id))!).toMatchObject({ status: 'running', finishedAt: null, digest: null });

  await builds.finish(id, { status: 'succeeded', digest: `sha256:${'c'.repeat(64)}`, mediaType: 'index' }, 0);
  const done = (await builds.find(id))!;
  expect(done).toMatchObject({ status: 'succeeded', digest: `sha256:${'c'.repeat(64)}`, mediaType: 'index' });
  expect(done.startedAt).toEqual(at);
  expect(done.error).toBeNull();
  expect(done.finishedAt!.getTime()).toBeGreaterThanOrEqual(at.getTime());

  // Ended: a late failure changes nothing.
  await builds.finish(id, { status: 'failed', error: 'late' });
  expect((await builds.find(id))!).toMatchObject({ status: 'succeeded', error: null });

  // A build that fails before any agent took it still gets a start time.
  const never = await builds.create(newBuild());
  await builds.finish(never.id, { status: 'failed', error: 'no agent' });
  const failed = (await builds.find(never.id))!;
  expect(failed).toMatchObject({ status: 'failed', error: 'no agent', digest: null });
  expect(failed.startedAt).toEqual(failed.finishedAt);
});

test('unfinished pages through every unfinished build, oldest first, from a cursor', async () => {
  // Builds of their own, accepted at the same past moment: the id orders them.
  const at = new Date(Date.now() - 3_600_000);
  const made = [];
  for (let i = 0; i < 5; i++) made.push(await builds.create(newBuild({ enqueuedAt: at })));
  const ours = new Set(made.map((b) => b.id));
  await prisma.build.updateMany({ where: { id: { in: [...ours] } }, data: { createdAt: at } });
  const before = new Date(at.getTime() + 1);
  const walk: string[] = [];
  let cursor: { createdAt: Date; id: string } | undefined;
  for (;;) {
    const page = await builds.unfinished(before, 2, cursor);
    walk.push(...page.map((b) => b.id).filter((id) => ours.has(id)));
    if (page.length < 2) break;
    cursor = { createdAt: page.at(-1)!.createdAt, id: page.at(-1)!.id };
  }
  expect(walk).toEqual([...ours].sort());
});
