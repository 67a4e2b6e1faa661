import 'reflect-metadata';
import { randomBytes, randomUUID } from 'node:crypto';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { Controller, Get, Module, type INestApplication } from '@nestjs/common';
import { APP_FILTER, APP_GUARD, NestFactory, Reflector } from '@nestjs/core';
import type { Redis } from 'ioredis';
import { DbModule, TokenRepository } from '@farm/db';
import { createRedisConnection } from '@farm/queue';
import { hashTokenSecret, newTokenSecret, shownPrefix } from '../../apps/api/src/api-tokens/token-secret';
import { AuthGuard, Public, Scopes } from '../../apps/api/src/common/auth.guard';
import { ErrorFilter } from '../../apps/api/src/common/error.filter';
import { RateLimiter } from '../../apps/api/src/common/rate-limiter';
import { createTestDatabase, type TestDatabase } from '../helpers/database';

/**
 * The AuthGuard in a small Nest app of its own, with the real TokenRepository (PostgreSQL) and
 * RateLimiter (Redis): what the farm's routes cannot show, because none of them is undeclared.
 */

const ADMIN_TOKEN = randomBytes(16).toString('hex');
const PREFIX = `farmtest-guard-${randomBytes(4).toString('hex')}`;

@Controller('probe')
class ProbeController {
  @Get('open')
  @Public()
  open() {
    return { ok: true };
  }

  @Get('read')
  @Scopes('builds:read')
  read() {
    return { ok: true };
  }

  @Get('both')
  @Scopes('builds:read', 'builds:write')
  both() {
    return { ok: true };
  }

  /** Declares neither @Public nor @Scopes: a route somebody forgot. */
  @Get('forgotten')
  forgotten() {
    return { ok: true };
  }
}

@Controller('scoped')
@Scopes('agents:admin')
class ScopedController {
  @Get('inherits')
  inherits() {
    return { ok: true };
  }

  @Get('overrides')
  @Scopes('builds:read')
  overrides() {
    return { ok: true };
  }
}

let database: TestDatabase;
let redis: Redis;
let app: INestApplication;
let url: string;
let tokens: TokenRepository;

async function tokenWith(scopes: string[]): Promise<string> {
  const secret = newTokenSecret();
  await tokens.create({
    id: randomUUID(),
    name: scopes.join(' '),
    scopes,
    secretHash: hashTokenSecret(secret),
    prefix: shownPrefix(secret),
  });
  return secret;
}

const get = async (path: string, token?: string) => {
  // No keep-alive: nothing of this client outlives the test.
  const headers: Record<string, string> = { connection: 'close' };
  if (token) headers.authorization = `Bearer ${token}`;
  const response = await fetch(`${url}${path}`, { headers });
  return { status: response.status, body: (await response.json()) as any };
};

beforeAll(async () => {
  database = await createTestDatabase();
  redis = createRedisConnection('redis://127.0.0.1:6379');
  @Module({
    imports: [DbModule.forRoot(database.url)],
    controllers: [ProbeController, ScopedController],
    providers: [
      { provide: APP_FILTER, useClass: ErrorFilter },
      {
        provide: APP_GUARD,
        useFactory: (reflector: Reflector, repository: TokenRepository) =>
          new AuthGuard(reflector, ADMIN_TOKEN, repository, new RateLimiter(redis, PREFIX, 1000)),
        inject: [Reflector, TokenRepository],
      },
    ],
  })
  class ProbeModule {}
  app = await NestFactory.create(ProbeModule, { logger: false });
  await app.listen(0, '127.0.0.1');
  url = await app.getUrl();
  tokens = app.get(TokenRepository);
});

afterAll(async () => {
  await app?.close();
  const keys = await redis.keys(`${PREFIX}:*`);
  if (keys.length > 0) await redis.del(...keys);
  redis?.disconnect();
  await database?.drop();
});

describe('AuthGuard', () => {
  test('fails closed: a route without @Public or @Scopes is refused even to the admin token', async () => {
    expect(await get('/probe/forgotten', ADMIN_TOKEN)).toEqual({
      status: 403,
      body: { error: { code: 'forbidden', message: expect.stringContaining('declares no scopes') } },
    });
    expect((await get('/probe/forgotten', await tokenWith(['admin']))).status).toBe(403);
    expect((await get('/probe/forgotten')).status).toBe(401);
  });

  test('public routes need no token', async () => {
    expect(await get('/probe/open')).toEqual({ status: 200, body: { ok: true } });
  });

  test('a route needing several scopes wants all of them; admin grants every one', async () => {
    expect((await get('/probe/both', await tokenWith(['builds:read']))).status).toBe(403);
    expect((await get('/probe/both', await tokenWith(['builds:write']))).status).toBe(403);
    expect((await get('/probe/both', await tokenWith(['builds:read', 'builds:write']))).status).toBe(200);
    expect((await get('/probe/both', await tokenWith(['admin']))).status).toBe(200);
    expect((await get('/probe/both', ADMIN_TOKEN)).status).toBe(200);
  });

  test("a controller's scopes cover its routes; a route's own scopes replace them", async () => {
    const agents = await tokenWith(['agents:admin']);
    const reader = await tokenWith(['builds:read']);
    expect((await get('/scoped/inherits', agents)).status).toBe(200);
    expect((await get('/scoped/inherits', reader)).status).toBe(403);
    expect((await get('/scoped/overrides', reader)).status).toBe(200);
    expect((await get('/scoped/overrides', agents)).status).toBe(403);
  });

  test('malformed, unknown and revoked tokens answer 401', async () => {
    const secret = await tokenWith(['builds:read']);
    expect((await get('/probe/read', secret)).status).toBe(200);
    for (const bad of [secret.slice(0, -1), `${secret}x`, ADMIN_TOKEN.slice(1), 'farm_', 'x'.repeat(5000)]) {
      expect({ bad, status: (await get('/probe/read', bad)).status }).toEqual({ bad, status: 401 });
    }
    const stored = await tokens.findByHash(hashTokenSecret(secret));
    await tokens.revoke(stored!.id, new Date());
    expect(await get('/probe/read', secret)).toEqual({
      status: 401,
      body: { error: { code: 'unauthorized', message: 'unknown or revoked token' } },
    });
  });
});

describe('RateLimiter', () => {
  test('counts per subject in fixed one-minute windows, in Redis, shared by every limiter', async () => {
    let now = Date.parse('2030-01-01T00:00:10Z');
    const prefix = `${PREFIX}-windows`;
    const first = new RateLimiter(redis, prefix, 3, () => now);
    const second = new RateLimiter(redis, prefix, 3, () => now);
    expect((await first.take('token:a')).allowed).toBe(true);
    expect((await second.take('token:a')).allowed).toBe(true);
    expect((await first.take('token:a')).allowed).toBe(true);
    // The fourth in this minute, whichever replica counts it.
    expect(await second.take('token:a')).toEqual({ allowed: false, retryAfterSeconds: 50 });
    expect((await first.take('token:b')).allowed).toBe(true);
    now += 50_000;
    expect((await first.take('token:a')).allowed).toBe(true);
    const keys = await redis.keys(`${prefix}:ratelimit:*`);
    expect(keys.length).toBe(3);
    for (const key of keys) expect(await redis.pttl(key)).toBeGreaterThan(0);
    await redis.del(...keys);
  });

  test('lets requests through when Redis does not answer', async () => {
    const down = createRedisConnection('redis://127.0.0.1:1', {
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
      lazyConnect: true,
    });
    try {
      expect(await new RateLimiter(down, PREFIX, 1).take('token:a')).toEqual({ allowed: true });
    } finally {
      down.disconnect();
    }
  });

  test('does not hold requests up behind a Redis that accepts but never answers', async () => {
    const sockets: Socket[] = [];
    const silent = createServer((socket) => sockets.push(socket));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const { port } = silent.address() as AddressInfo;
    const stuck = createRedisConnection(`redis://127.0.0.1:${port}`);
    try {
      const started = Date.now();
      expect(await new RateLimiter(stuck, PREFIX, 1).take('token:a')).toEqual({ allowed: true });
      expect(Date.now() - started).toBeLessThan(2000);
    } finally {
      stuck.disconnect();
      sockets.forEach((socket) => socket.destroy());
      await new Promise((resolve) => silent.close(resolve));
    }
  });
});
