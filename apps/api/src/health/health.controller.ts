import { Controller, Get, Inject } from '@nestjs/common';
import type { Redis } from 'ioredis';
import { BuildRepository } from '@farm/db';
import { ApiError } from '../common/api-error';
import { Public } from '../common/auth.guard';
import { REDIS } from '../tokens';

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
    const [postgres, redis] = await Promise.allSettled([this.builds.ping(), this.redis.ping()]);
    if (postgres.status === 'rejected' || redis.status === 'rejected') {
      const down = [postgres.status === 'rejected' ? 'postgres' : '', redis.status === 'rejected' ? 'redis' : '']
        .filter(Boolean)
        .join(' and ');
      throw new ApiError('unavailable', `not ready: ${down} unreachable`);
    }
    return { status: 'ready', postgres: 'ok', redis: 'ok' };
  }
}
