import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { Client } from 'pg';
import { createTestDatabase, type TestDatabase } from '../helpers/database';
import { startFarm, type TestFarm } from '../helpers/farm';
import { createGitRepo, type TestGitRepo } from '../helpers/git-repo';

/**
 * `Idempotency-Key` on `POST /v1/builds` through the real api, PostgreSQL and Redis: a retried
 * request gets the build the first one created (also when both race), another request under
 * the same key is a 409, a bad key a 400, and neither leaves anything stored or queued. No
 * agent runs: the builds only need to be accepted.
 */

jest.setTimeout(120_000);

let database: TestDatabase;
let farm: TestFarm;
let repo: TestGitRepo;
let db: Client;
let redis: Redis;
let publish: Queue;

beforeAll(async () => {
  [database, repo] = await Promise.all([createTestDatabase(), createGitRepo({ Dockerfile: 'FROM scratch\n' })]);
  farm = await startFarm({ databaseUrl: database.url, agents: [] });
  db = new Client({ connectionString: database.url });
  await db.connect();
  redis = new Redis('redis://127.0.0.1:6379', { maxRetriesPerRequest: null });
  publish = new Queue('publish', { connection: redis, prefix: farm.queuePrefix });
});

afterAll(async () => {
  await publish?.close();
  redis?.disconnect();
  await db?.end();
  await farm?.stop();
  await Promise.all([database?.drop(), repo?.remove()]);
});

const body = (tag = '1.0') => ({
  repo: repo.url,
  ref: 'main',
  platforms: ['linux/amd64', 'linux/arm64'],
  tags: [`registry.test:5000/team/app:${tag}`],
});

async function post(payload: unknown, key?: string, token = farm.adminToken): Promise<{ status: number; body: any }> {
  const headers: Record<string, string> = {
    authorization: `Bearer ${token}`,
    'content-type': 'application/json',
  };
  if (key !== undefined) headers['idempotency-key'] = key;
  const response = await fetch(`${farm.apiUrl}/v1/builds`, { method: 'POST', headers, body: JSON.stringify(payload) });
  return { status: response.status, body: await response.json() };
}

/** Build rows and publish flows, counted where they live. */
async function stored(): Promise<{ builds: number; flows: number }> {
  const { rows } = await db.query<{ count: string }>('SELECT count(*) FROM "Build"');
  const counts = await publish.getJobCounts('waiting-children', 'waiting', 'delayed', 'active', 'completed', 'failed');
  return { builds: Number(rows[0].count), flows: Object.values(counts).reduce((a, b) => a + b, 0) };
}

let keys = 0;
const newKey = () => `key-${Date.now()}-${++keys}`;

test('the same key and request twice: one build, one flow, answered 202 both times', async () => {
  const before = await stored();
  const key = newKey();
  const first = await post(body(), key);
  expect(first.status).toBe(202);
  expect(first.body).toMatchObject({ status: 'queued', commit: repo.commit });
  // The same request spelled differently (key order, defaults written out) is the same request.
  const { platforms, tags, ...rest } = body();
  const second = await post({ tags, ...rest, dockerfile: 'Dockerfile', context: '.', platforms }, key);
  expect(second.status).toBe(202);
  expect(second.body.id).toBe(first.body.id);
  expect(second.body.commit).toBe(first.body.commit);
  expect(await stored()).toEqual({ builds: before.builds + 1, flows: before.flows + 1 });
  expect(await publish.getJobState(`publish-${first.body.id}`)).toBe('waiting-children');
});

test('without a key, the same request twice makes two builds', async () => {
  const before = await stored();
  const [a, b] = [await post(body()), await post(body())];
  expect([a.status, b.status]).toEqual([202, 202]);
  expect(a.body.id).not.toBe(b.body.id);
  expect(await stored()).toEqual({ builds: before.builds + 2, flows: before.flows + 2 });
});

test('ten concurrent requests with one key: the same build for all, stored and queued once', async () => {
  const before = await stored();
  const key = newKey();
  const answers = await Promise.all(Array.from({ length: 10 }, () => post(body('race'), key)));
  expect(answers.map((a) => a.status)).toEqual(Array(10).fill(202));
  expect(new Set(answers.map((a) => a.body.id)).size).toBe(1);
  // Every answer shows the whole build, never a half-written one.
  for (const answer of answers) expect(answer.body.platforms).toHaveLength(2);
  expect(await stored()).toEqual({ builds: before.builds + 1, flows: before.flows + 1 });
});

test('the same key with another request: 409 with the error body, nothing stored or queued', async () => {
  const key = newKey();
  const first = await post(body('a'), key);
  expect(first.status).toBe(202);
  const before = await stored();
  const conflict = await post(body('b'), key);
  expect(conflict.status).toBe(409);
  expect(conflict.body).toEqual({
    error: { code: 'conflict', message: expect.stringContaining(first.body.id), field: 'Idempotency-Key' },
  });
  expect(await stored()).toEqual(before);
  // The key still answers its own request.
  expect((await post(body('a'), key)).body.id).toBe(first.body.id);
});

test('different requests racing under one key: exactly one is accepted, the others get 409', async () => {
  const before = await stored();
  const key = newKey();
  const answers = await Promise.all(Array.from({ length: 6 }, (_, i) => post(body(`racer-${i}`), key)));
  const statuses = answers.map((a) => a.status).sort();
  expect(statuses).toEqual([202, 409, 409, 409, 409, 409]);
  expect(await stored()).toEqual({ builds: before.builds + 1, flows: before.flows + 1 });
});

test.each([
  ['longer than 255 characters', 'k'.repeat(256)],
  ['empty', ''],
  ['not ASCII', 'clé-1'],
  ['with a control character', 'a\tb'],
])('a key %s: 400 naming the header, nothing stored or queued', async (_what, key) => {
  const before = await stored();
  const answer = await post(body('bad-key'), key);
  expect(answer.status).toBe(400);
  expect(answer.body).toEqual({
    error: { code: 'invalid_request', message: expect.stringContaining('Idempotency-Key'), field: 'Idempotency-Key' },
  });
  expect(await stored()).toEqual(before);
});

test('a key of 255 printable characters is accepted', async () => {
  const key = `${newKey()}-${'x'.repeat(255)}`.slice(-255);
  const answer = await post(body('long-key'), key);
  expect(answer.status).toBe(202);
  expect((await post(body('long-key'), key)).body.id).toBe(answer.body.id);
});

test('a bad request with a key stores nothing and does not take the key', async () => {
  const key = newKey();
  const before = await stored();
  const bad = await post({ ...body(), platforms: ['linux/nope'] }, key);
  expect(bad.status).toBe(400);
  expect(await stored()).toEqual(before);
  const good = await post(body('after-bad'), key);
  expect(good.status).toBe(202);
});

test('a key expires after 24 hours: then it names a new build', async () => {
  const key = newKey();
  const first = await post(body('old'), key);
  expect(first.status).toBe(202);
  // As if the first request had been made 25 hours ago.
  await db.query(`UPDATE "Build" SET "createdAt" = now() - interval '25 hours' WHERE "id" = $1`, [first.body.id]);
  const second = await post(body('new'), key);
  expect(second.status).toBe(202);
  expect(second.body.id).not.toBe(first.body.id);
  const { rows } = await db.query('SELECT "id", "idempotencyKey" FROM "Build" WHERE "id" = ANY($1::uuid[])', [
    [first.body.id, second.body.id],
  ]);
  expect(Object.fromEntries(rows.map((r) => [r.id, r.idempotencyKey]))).toEqual({
    [first.body.id]: null,
    [second.body.id]: `admin\n${key}`,
  });
});

test('keys are per token: the same key from another token is another key, never a 409', async () => {
  const token = await farm.request('POST', '/v1/tokens', { name: 'ci', scopes: ['builds:write'] });
  expect(token.status).toBe(201);
  const key = newKey();
  const admin = await post(body('per-token-a'), key);
  const ci = await post(body('per-token-b'), key, token.body.secret);
  expect([admin.status, ci.status]).toEqual([202, 202]);
  expect(ci.body.id).not.toBe(admin.body.id);
  // Each token's retry still finds its own build.
  expect((await post(body('per-token-b'), key, token.body.secret)).body.id).toBe(ci.body.id);
  expect((await post(body('per-token-a'), key)).body.id).toBe(admin.body.id);
});

test('the OpenAPI document describes the header', async () => {
  const document: any = await (await fetch(`${farm.apiUrl}/docs/openapi.json`)).json();
  const parameters: any[] = document.paths['/v1/builds'].post.parameters ?? [];
  expect(parameters).toContainEqual(
    expect.objectContaining({ name: 'Idempotency-Key', in: 'header', required: false }),
  );
});
