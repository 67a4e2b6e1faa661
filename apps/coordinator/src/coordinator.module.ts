import { Module, type DynamicModule, type OnApplicationShutdown, Inject } from '@nestjs/common';
import type { Redis } from 'ioredis';
import type { CoordinatorConfig } from '@farm/config';
import { DbModule } from '@farm/db';
import { RegistryClient } from '@farm/oci';
import { createRedisConnection } from '@farm/queue';
import { AgentEventsConsumer } from './agent-events.consumer';
import { ForgeStatuses } from './forge-statuses';
import { PlatformOutcomes } from './platform-outcomes';
import { Publisher } from './publisher';
import { PublishWorker } from './publish.worker';
import { SchedulingSweep } from './scheduling.sweep';
import { Reconciler } from './reconciler';
import { COORDINATOR_CONFIG, REDIS, REGISTRY } from './tokens';

class RedisLifecycle implements OnApplicationShutdown {
  constructor(@Inject(REDIS) private readonly redis: Redis) {}

  onApplicationShutdown(): void {
    this.redis.disconnect();
  }
}

@Module({})
export class CoordinatorModule {
  static forRoot(config: CoordinatorConfig): DynamicModule {
    return {
      module: CoordinatorModule,
      imports: [DbModule.forRoot(config.databaseUrl)],
      providers: [
        { provide: COORDINATOR_CONFIG, useValue: config },
        { provide: REDIS, useFactory: () => createRedisConnection(config.redisUrl) },
        {
          provide: REGISTRY,
          useFactory: () =>
            new RegistryClient({ dockerConfig: config.registryAuth, insecureRegistries: config.insecureRegistries }),
        },
        RedisLifecycle,
        PlatformOutcomes,
        ForgeStatuses,
        Publisher,
        PublishWorker,
        AgentEventsConsumer,
        SchedulingSweep,
        Reconciler,
      ],
    };
  }
}
