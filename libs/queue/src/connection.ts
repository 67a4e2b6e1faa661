import { Redis, type RedisOptions } from 'ioredis';

/**
 * A Redis connection for BullMQ. Workers and QueueEvents block on Redis, so their connections
 * need `maxRetriesPerRequest: null` (BullMQ requires it) and reconnect by themselves.
 */
export function createRedisConnection(redisUrl: string, options: RedisOptions = {}): Redis {
  return new Redis(redisUrl, { maxRetriesPerRequest: null, enableReadyCheck: true, ...options });
}
