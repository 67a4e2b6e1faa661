import { Controller, Get, Inject } from '@nestjs/common';
import type { Redis } from 'ioredis';
import { BuildRepository } from '@farm/db';
import { ApiError } from '../common/api-error';
import { Public } from '../common/auth.guard';
import { REDIS } from '../tokens';

/**
 * A readiness probe must answer even when a dependency hangs (a partitioned network accepts no
 * packets and refuses none): a check slower than this counts as a failure.
 */
const READY_CHECK_TIMEOUT_MS = 2_000;

@Controller()
@Public()
export class HealthController {
  constructor(
    private readonly builds: BuildRepository,
    @Inject(REDIS) private readonly redis: Redis,
  ) {}

  /** The process is alive. */
  @Get('healthz')
  healthz(): { status: 'ok' } {
    return { status: 'ok' };
  }

  /** PostgreSQL and Redis both answer: this replica can take requests. */
  @Get('readyz')
  async readyz(): Promise<{ status: 'ready'; postgres: 'ok'; redis: 'ok' }> {
    const [postgres, redis] = await Promise.allSettled([
      withTimeout(this.builds.ping(), READY_CHECK_TIMEOUT_MS),
      withTimeout(this.redis.ping(), READY_CHECK_TIMEOUT_MS),
    ]);
    if (postgres.status === 'rejected' || redis.status === 'rejected') {
      const down = [postgres.status === 'rejected' ? 'postgres' : '', redis.status === 'rejected' ? 'redis' : '']
        .filter(Boolean)
        .join(' and ');
      throw new ApiError('unavailable', `not ready: ${down} unreachable`);
    }
    return { status: 'ready', postgres: 'ok', redis: 'ok' };
  }
}

function withTimeout<T>(check: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
  });
  return Promise.race([check, timeout]).finally(() => clearTimeout(timer));
}
