import { createHash, randomUUID } from 'node:crypto';
import { Client } from 'pg';
import { SCOPES } from '@farm/domain';
import { createRedisConnection } from '@farm/queue';
import { createTestDatabase, type TestDatabase } from '../helpers/database';
import { startFarm, waitFor, type TestFarm } from '../helpers/farm';

/**
 * Scoped API tokens, the per-token rate limit and the per-route body limits, against a real
 * farm (api + coordinator from dist/, PostgreSQL, Redis). The route walk takes every route
 * from the farm's own OpenAPI document, so a route added later is walked too.
 */

jest.setTimeout(120_000);

const NON_ADMIN = SCOPES.filter((scope) => scope !== 'admin');
const METHODS = ['get', 'post', 'put', 'patch', 'delete'] as const;
/** The routes anyone may call; a route that becomes public has to be added here on purpose. */
const PUBLIC_ROUTES = new Set(['GET /healthz', 'GET /readyz', 'GET /metrics', 'POST /v1/projects/{id}/hooks/{forge}']);
/** Prisma's table for the ApiToken model. */
const TOKEN_TABLE = '"ApiToken"';

let database: TestDatabase;
let farm: TestFarm;
let db: Client;

beforeAll(async () => {
  database = await createTestDatabase();
  farm = await startFarm({ databaseUrl: database.url, agents: [] });
  db = new Client({ connectionString: database.url });
  await db.connect();
});

afterAll(async () => {
  await db?.end();
  await farm?.stop();
  await database?.drop();
});

interface Created {
  id: string;
  secret: string;
  prefix: string;
  scopes: string[];
}

async function createToken(scopes: string[], name = `test ${scopes.join(' ')}`): Promise<Created> {
  const answer = await farm.request('POST', '/v1/tokens', { name, scopes });
  if (answer.status !== 201)
    throw new Error(`POST /v1/tokens answered ${answer.status} ${JSON.stringify(answer.body)}`);
  return answer.body as Created;
}

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

describe('every route needs a token with its scopes', () => {
  interface Operation {
    method: string;
    path: string;
    scopes: string[] | undefined;
    guarded: boolean;
  }
  let operations: Operation[];
  /** One token per scope set, created on first use. */
  const tokens = new Map<string, Promise<Created>>();
  const tokenWith = (scopes: string[]) => {
    const key = [...scopes].sort().join(',');
    if (!tokens.has(key)) tokens.set(key, createToken(scopes));
    return tokens.get(key)!;
  };

  beforeAll(async () => {
    const response = await fetch(`${farm.apiUrl}/docs/openapi.json`);
    const document = (await response.json()) as { paths: Record<string, Record<string, any>> };
    operations = Object.entries(document.paths).flatMap(([path, item]) =>
      METHODS.filter((method) => item[method]).map((method) => ({
        method: method.toUpperCase(),
        path,
        scopes: item[method]['x-farm-scopes'] as string[] | undefined,
        guarded: Array.isArray(item[method].security) && item[method].security.length > 0,
      })),
    );
  });

  /** The path with its parameters filled: ids that exist nowhere, a known forge. */
  const concrete = (path: string) =>
    path.replace(/\{(\w+)\}/g, (_, name: string) => (name === 'forge' ? 'github' : randomUUID()));
  const call = (operation: Operation, token: string | null) =>
    farm.request(
      operation.method,
      concrete(operation.path),
      ['POST', 'PUT', 'PATCH'].includes(operation.method) ? {} : undefined,
      token,
    );
  const describeOperation = (o: Operation) => `${o.method} ${o.path}`;

  test('the document lists the routes, the token routes among them', () => {
    const names = operations.map(describeOperation);
    expect(names).toEqual(
      expect.arrayContaining(['POST /v1/tokens', 'GET /v1/tokens', 'DELETE /v1/tokens/{id}', 'POST /v1/builds']),
    );
    expect(operations.filter((o) => o.guarded).length).toBeGreaterThanOrEqual(15);
  });

  test('only the known public routes are public, and every other route declares its scopes', () => {
    const publicRoutes = operations.filter((o) => !o.guarded).map(describeOperation);
    expect(publicRoutes.sort()).toEqual([...PUBLIC_ROUTES].sort());
    const undeclared = operations.filter((o) => o.guarded && !(o.scopes && o.scopes.length > 0));
    expect(undeclared.map(describeOperation)).toEqual([]);
    for (const operation of operations.filter((o) => o.guarded)) {
      for (const scope of operation.scopes!) expect(SCOPES).toContain(scope);
    }
  });

  test('no token: 401; a token lacking the scope: 403; the scope: neither', async () => {
    const problems: string[] = [];
    for (const operation of operations.filter((o) => o.guarded)) {
      const required = operation.scopes ?? ['admin'];
      const name = describeOperation(operation);

      const anonymous = await call(operation, null);
      if (anonymous.status !== 401 || anonymous.body?.error?.code !== 'unauthorized') {
        problems.push(`${name} without a token: ${anonymous.status} ${JSON.stringify(anonymous.body)}`);
      }
      const unknown = await call(operation, `farm_${'x'.repeat(43)}`);
      if (unknown.status !== 401) problems.push(`${name} with an unknown token: ${unknown.status}`);

      // Every other scope there is, but not (the first of) the ones needed.
      const lacking = NON_ADMIN.filter((scope) => scope !== required[0]);
      const refused = await call(operation, (await tokenWith(lacking)).secret);
      if (refused.status !== 403 || refused.body?.error?.code !== 'forbidden') {
        problems.push(`${name} with ${lacking.join(',')}: ${refused.status} ${JSON.stringify(refused.body)}`);
      }

      for (const token of [(await tokenWith(required)).secret, (await tokenWith(['admin'])).secret, farm.adminToken]) {
        const allowed = await call(operation, token);
        if (allowed.status === 401 || allowed.status === 403 || allowed.status >= 500) {
          problems.push(`${name} with ${required.join(',')}: ${allowed.status} ${JSON.stringify(allowed.body)}`);
        }
      }
    }
    expect(problems).toEqual([]);
  });
});

describe('tokens', () => {
  test('the secret is shown once and stored only as its SHA-256', async () => {
    const created = await createToken(['builds:read'], 'hashed');
    expect(created.secret).toMatch(/^farm_[A-Za-z0-9_-]{43}$/);
    expect(created.secret.startsWith(created.prefix)).toBe(true);
    expect(created.prefix.length).toBeLessThan(created.secret.length / 2);

    const { rows } = await db.query(`SELECT t.*, row_to_json(t)::text AS whole FROM ${TOKEN_TABLE} t WHERE id = $1`, [
      created.id,
    ]);
    expect(rows).toHaveLength(1);
    expect(rows[0].secretHash).toBe(sha256(created.secret));
    expect(rows[0].whole).not.toContain(created.secret);
    expect(rows[0].whole).not.toContain(created.secret.slice(created.prefix.length));

    const listed = await farm.request('GET', '/v1/tokens');
    expect(listed.status).toBe(200);
    const text = JSON.stringify(listed.body);
    expect(text).not.toContain(created.secret);
    expect(text).not.toContain(rows[0].secretHash);
    const entry = listed.body.tokens.find((t: { id: string }) => t.id === created.id);
    expect(entry).toEqual({
      id: created.id,
      name: 'hashed',
      scopes: ['builds:read'],
      prefix: created.prefix,
      createdAt: expect.any(String),
      lastUsedAt: null,
      revokedAt: null,
    });
  });

  test('a use sets lastUsedAt, without a write per request', async () => {
    const created = await createToken(['builds:read'], 'used');
    expect((await farm.request('GET', '/v1/builds', undefined, created.secret)).status).toBe(200);
    let lastUsedAt: Date | null = null;
    await waitFor(async () => {
      const { rows } = await db.query(`SELECT "lastUsedAt" FROM ${TOKEN_TABLE} WHERE id = $1`, [created.id]);
      lastUsedAt = rows[0].lastUsedAt;
      return lastUsedAt !== null;
    }, 10_000);
    expect(Math.abs(Date.now() - lastUsedAt!.getTime())).toBeLessThan(30_000);

    // Within the minute, further uses leave it alone.
    for (let i = 0; i < 3; i++) {
      expect((await farm.request('GET', '/v1/builds', undefined, created.secret)).status).toBe(200);
    }
    await new Promise((resolve) => setTimeout(resolve, 300));
    const { rows } = await db.query(`SELECT "lastUsedAt" FROM ${TOKEN_TABLE} WHERE id = $1`, [created.id]);
    expect(rows[0].lastUsedAt.getTime()).toBe(lastUsedAt!.getTime());
  });

  test('a revoked token answers 401 from then on; revoking is idempotent; unknown ids 404', async () => {
    const created = await createToken(['builds:read', 'builds:write'], 'revoked');
    expect((await farm.request('GET', '/v1/builds', undefined, created.secret)).status).toBe(200);

    expect((await farm.request('DELETE', `/v1/tokens/${created.id}`)).status).toBe(204);
    const refused = await farm.request('GET', '/v1/builds', undefined, created.secret);
    expect(refused.status).toBe(401);
    expect(refused.body.error.code).toBe('unauthorized');

    const listed = await farm.request('GET', '/v1/tokens');
    const entry = listed.body.tokens.find((t: { id: string }) => t.id === created.id);
    expect(Date.parse(entry.revokedAt)).not.toBeNaN();
    expect((await farm.request('DELETE', `/v1/tokens/${created.id}`)).status).toBe(204);
    const again = await farm.request('GET', '/v1/tokens');
    expect(again.body.tokens.find((t: { id: string }) => t.id === created.id).revokedAt).toBe(entry.revokedAt);

    for (const id of [randomUUID(), 'not-a-uuid']) {
      const missing = await farm.request('DELETE', `/v1/tokens/${id}`);
      expect(missing.status).toBe(404);
      expect(missing.body.error.code).toBe('not_found');
    }
  });

  test('bad requests answer 400 with the field, and store nothing', async () => {
    const count = async () => Number((await db.query(`SELECT count(*) FROM ${TOKEN_TABLE}`)).rows[0].count);
    const before = await count();
    const cases: [unknown, string][] = [
      [{ name: 'x', scopes: ['builds:read', 'builds:delete'] }, 'scopes'],
      [{ name: 'x', scopes: ['ADMIN'] }, 'scopes'],
      [{ name: 'x', scopes: [] }, 'scopes'],
      [{ name: 'x', scopes: ['builds:read', 'builds:read'] }, 'scopes'],
      [{ name: 'x', scopes: 'admin' }, 'scopes'],
      [{ name: 'x' }, 'scopes'],
      [{ name: '', scopes: ['admin'] }, 'name'],
      [{ name: 'n'.repeat(101), scopes: ['admin'] }, 'name'],
      [{ scopes: ['admin'] }, 'name'],
      [{ name: 'x', scopes: ['admin'], secret: 'farm_chosen' }, 'secret'],
    ];
    for (const [body, field] of cases) {
      const answer = await farm.request('POST', '/v1/tokens', body);
      expect({ body, status: answer.status, code: answer.body?.error?.code, field: answer.body?.error?.field }).toEqual(
        { body, status: 400, code: 'invalid_request', field },
      );
    }
    expect(await count()).toBe(before);
  });

  test('only the admin scope creates, lists and revokes tokens', async () => {
    const everythingElse = await createToken(NON_ADMIN, 'not admin');
    const admin = await createToken(['admin'], 'admin');
    const create = await farm.request('POST', '/v1/tokens', { name: 'x', scopes: ['admin'] }, everythingElse.secret);
    expect(create.status).toBe(403);
    expect(create.body.error).toEqual({ code: 'forbidden', message: expect.stringContaining('admin') });
    const byAdmin = await farm.request('POST', '/v1/tokens', { name: 'y', scopes: ['builds:read'] }, admin.secret);
    expect(byAdmin.status).toBe(201);
    expect((await farm.request('DELETE', `/v1/tokens/${byAdmin.body.id}`, undefined, admin.secret)).status).toBe(204);
  });
});

describe('body limits per route', () => {
  const padded = (bytes: number) => JSON.stringify({ name: 'x', scopes: ['admin'], pad: 'p'.repeat(bytes) });

  test('JSON bodies over 64 KiB answer 413 with the error body; under it they reach validation', async () => {
    for (const path of ['/v1/tokens', '/v1/builds', '/v1/projects']) {
      const tooLarge = await farm.request('POST', path, padded(65 * 1024));
      expect({ path, status: tooLarge.status, body: tooLarge.body }).toEqual({
        path,
        status: 413,
        body: { error: { code: 'payload_too_large', message: expect.any(String) } },
      });
      const fits = await farm.request('POST', path, padded(60 * 1024));
      expect({ path, status: fits.status }).toEqual({ path, status: 400 });
    }
  });

  test('webhooks keep their larger raw limit', async () => {
    // An unknown project: refused for that, not for the size.
    const response = await fetch(`${farm.apiUrl}/v1/projects/${randomUUID()}/hooks/github`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-github-event': 'push' },
      body: padded(1024 * 1024),
    });
    expect(response.status).not.toBe(413);
    expect(response.status).toBeLessThan(500);
  });
});

describe('rate limit', () => {
  let limitedDatabase: TestDatabase;
  let limited: TestFarm;
  const LIMIT = 5;

  beforeAll(async () => {
    limitedDatabase = await createTestDatabase();
    limited = await startFarm({
      databaseUrl: limitedDatabase.url,
      agents: [],
      // The test's own requests come from loopback: it plays the proxy naming clients.
      env: { FARM_RATE_LIMIT_PER_MINUTE: String(LIMIT), FARM_TRUST_PROXY: 'loopback' },
    });
  });

  afterAll(async () => {
    await limited?.stop();
    await limitedDatabase?.drop();
  });

  /** Calls until the first 429 (at most 3 limits' worth): how many passed, and that answer. */
  async function untilLimited(token: string | null, forwardedFor?: string) {
    let passed = 0;
    for (let i = 0; i < 3 * LIMIT; i++) {
      const response = await fetch(`${limited.apiUrl}/v1/builds`, {
        headers: {
          ...(token === null ? {} : { authorization: `Bearer ${token}` }),
          ...(forwardedFor ? { 'x-forwarded-for': forwardedFor } : {}),
        },
      });
      const body = (await response.json()) as any;
      if (response.status === 429) return { passed, body, retryAfter: response.headers.get('retry-after') };
      passed++;
    }
    return { passed, body: undefined, retryAfter: null };
  }

  test('over the limit a token gets 429 with Retry-After; other tokens and the probes do not', async () => {
    const created = await limited.request('POST', '/v1/tokens', { name: 'busy', scopes: ['builds:read'] });
    const other = await limited.request('POST', '/v1/tokens', { name: 'quiet', scopes: ['builds:read'] });
    expect([created.status, other.status]).toEqual([201, 201]);

    const result = await untilLimited(created.body.secret);
    // A window may turn over during the loop: then a second window's worth passes.
    expect(result.passed).toBeGreaterThanOrEqual(1);
    expect(result.passed).toBeLessThanOrEqual(2 * LIMIT);
    expect(result.body).toEqual({ error: { code: 'too_many_requests', message: expect.any(String) } });
    expect(Number(result.retryAfter)).toBeGreaterThanOrEqual(1);
    expect(Number(result.retryAfter)).toBeLessThanOrEqual(60);

    const quiet = await fetch(`${limited.apiUrl}/v1/builds`, {
      headers: { authorization: `Bearer ${other.body.secret}` },
    });
    expect(quiet.status).toBe(200);
    expect((await fetch(`${limited.apiUrl}/healthz`)).status).toBe(200);
  });

  test('without a valid token the client address is limited: 401s turn into 429s', async () => {
    const result = await untilLimited(null);
    expect(result.passed).toBeLessThanOrEqual(2 * LIMIT);
    expect(result.body?.error.code).toBe('too_many_requests');
    expect(Number(result.retryAfter)).toBeGreaterThanOrEqual(1);
  });

  test('behind a trusted proxy each forwarded client address has its own limit', async () => {
    const first = await untilLimited(null, '203.0.113.7');
    expect(first.body?.error.code).toBe('too_many_requests');
    const other = await fetch(`${limited.apiUrl}/v1/builds`, { headers: { 'x-forwarded-for': '203.0.113.8' } });
    expect(other.status).toBe(401);
  });

  test('the counters live in Redis under the farm key prefix', async () => {
    const redis = createRedisConnection('redis://127.0.0.1:6379');
    try {
      const keys = await redis.keys(`${limited.queuePrefix}:ratelimit:*`);
      expect(keys.length).toBeGreaterThanOrEqual(2);
      for (const key of keys) expect(await redis.pttl(key)).toBeGreaterThan(0);
    } finally {
      redis.disconnect();
    }
  });
});
