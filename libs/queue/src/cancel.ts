import type { Redis } from 'ioredis';
import { cancelChannel, cancelKey } from './names';

/**
 * Canceling jobs (part of the agent protocol, see agent-protocol.ts). A key per canceled job
 * is the durable request: an agent checks it when it takes a job and on every heartbeat, so a
 * cancel is never lost, not even with an agent that was disconnected. The pub/sub message only
 * makes the agent holding the job act at once.
 */

/** Long enough for any job to be taken or retried; jobs of a retry have new ids anyway. */
const CANCEL_TTL_SECONDS = 7 * 24 * 60 * 60;

export async function requestCancel(redis: Redis, prefix: string, jobIds: string[]): Promise<void> {
  if (jobIds.length === 0) return;
  const multi = redis.multi();
  for (const jobId of jobIds) multi.set(cancelKey(prefix, jobId), '1', 'EX', CANCEL_TTL_SECONDS);
  for (const jobId of jobIds) multi.publish(cancelChannel(prefix), jobId);
  const results = (await multi.exec()) ?? [];
  for (const [error] of results) if (error) throw error;
}

/** The jobs of `jobIds` that were canceled. */
export async function canceledJobs(redis: Redis, prefix: string, jobIds: string[]): Promise<string[]> {
  if (jobIds.length === 0) return [];
  const pipeline = redis.pipeline();
  for (const jobId of jobIds) pipeline.exists(cancelKey(prefix, jobId));
  const results = (await pipeline.exec()) ?? [];
  return jobIds.filter((_, i) => {
    const [error, exists] = results[i] ?? [];
    if (error) throw error;
    return exists === 1;
  });
}
