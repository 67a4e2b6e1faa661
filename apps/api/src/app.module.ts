import { Inject, Module, type DynamicModule, type OnApplicationShutdown } from '@nestjs/common';
import { APP_FILTER, APP_GUARD, APP_PIPE, Reflector } from '@nestjs/core';
import { FlowProducer } from 'bullmq';
import type { Redis } from 'ioredis';
import type { ApiConfig } from '@farm/config';
import { DbModule, TokenRepository } from '@farm/db';
import { createRedisConnection } from '@farm/queue';
import { AuthGuard } from './common/auth.guard';
import { RateLimiter } from './common/rate-limiter';
import { ErrorFilter } from './common/error.filter';
import { createValidationPipe } from './common/validation';
import { BuildsController } from './builds/builds.controller';
import { BuildsService } from './builds/builds.service';
import { BuildActionsService } from './builds/build-actions.service';
import { BuildSubmitter } from './builds/build-submitter';
import { AgentsController } from './agents/agents.controller';
import { AgentsService } from './agents/agents.service';
import { HealthController } from './health/health.controller';
import { FarmMetrics } from './metrics/farm-metrics';
import { MetricsController } from './metrics/metrics.controller';
import { HooksController } from './hooks/hooks.controller';
import { HooksService } from './hooks/hooks.service';
import { ProjectsController } from './projects/projects.controller';
import { ProjectsService } from './projects/projects.service';
import { DashboardController } from './dashboard/dashboard.controller';
import { ContextsController } from './contexts/contexts.controller';
import { ContextStore } from './contexts/context-store';
import { ApiTokensController } from './api-tokens/api-tokens.controller';
import { ApiTokensService } from './api-tokens/api-tokens.service';
import { API_CONFIG, FLOW_PRODUCER, REDIS } from './tokens';

/** Closes the api's Redis clients on shutdown (enableShutdownHooks). */
class QueueLifecycle implements OnApplicationShutdown {
  constructor(
    @Inject(REDIS) private readonly redis: Redis,
    @Inject(FLOW_PRODUCER) private readonly flows: FlowProducer,
  ) {}

  async onApplicationShutdown(): Promise<void> {
    await this.flows.close();
    this.redis.disconnect();
  }
}

@Module({})
export class AppModule {
  static forRoot(config: ApiConfig): DynamicModule {
    return {
      module: AppModule,
      imports: [DbModule.forRoot(config.databaseUrl)],
      controllers: [
        BuildsController,
        ProjectsController,
        HooksController,
        AgentsController,
        HealthController,
        MetricsController,
        DashboardController,
        ContextsController,
        ApiTokensController,
      ],
      providers: [
        { provide: API_CONFIG, useValue: config },
        // Requests fail fast with 503 while Redis is away instead of queueing commands forever.
        { provide: REDIS, useFactory: () => createRedisConnection(config.redisUrl, { maxRetriesPerRequest: 1 }) },
        {
          provide: FLOW_PRODUCER,
          useFactory: (redis: Redis) => new FlowProducer({ connection: redis, prefix: config.queuePrefix }),
          inject: [REDIS],
        },
        QueueLifecycle,
        BuildsService,
        BuildActionsService,
        BuildSubmitter,
        ContextStore,
        ProjectsService,
        HooksService,
        AgentsService,
        FarmMetrics,
        ApiTokensService,
        {
          provide: RateLimiter,
          useFactory: (redis: Redis) => new RateLimiter(redis, config.queuePrefix, config.rateLimitPerMinute),
          inject: [REDIS],
        },
        { provide: APP_PIPE, useFactory: createValidationPipe },
        { provide: APP_FILTER, useClass: ErrorFilter },
        {
          provide: APP_GUARD,
          useFactory: (reflector: Reflector, tokens: TokenRepository, rateLimiter: RateLimiter) =>
            new AuthGuard(reflector, config.adminToken, tokens, rateLimiter),
          inject: [Reflector, TokenRepository, RateLimiter],
        },
      ],
    };
  }
}
