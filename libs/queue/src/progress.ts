import type { Redis } from 'ioredis';
import type { BuildStep } from '@farm/domain';
import { progressKey } from './names';

/**
 * Live progress of running platforms (part of the agent protocol, see agent-protocol.ts): the
 * agent writes what each platform is doing, the api reads it into `GET /v1/builds/{id}`.
 * Ephemeral, so it lives in Redis only and expires; the build's outcome is in PostgreSQL.
 */

/** Checking out (and sending the source to an SSH host), building with buildah, pushing by digest. */
export type BuildPhase = 'preparing' | 'building' | 'pushing';

export interface PlatformProgress extends Partial<BuildStep> {
  phase: BuildPhase;
  /** The build's run it belongs to: progress of an older run is stale. */
  retry: number;
  at: string;
}

const PHASES: readonly string[] = ['preparing', 'building', 'pushing'];
const PROGRESS_TTL_SECONDS = 24 * 60 * 60;

export async function writeProgress(
  redis: Redis,
  prefix: string,
  buildId: string,
  platform: string,
  progress: PlatformProgress,
): Promise<void> {
  const key = progressKey(prefix, buildId);
  await redis.multi().hset(key, platform, JSON.stringify(progress)).expire(key, PROGRESS_TTL_SECONDS).exec();
}

export async function clearProgress(redis: Redis, prefix: string, buildId: string, platform?: string): Promise<void> {
  const key = progressKey(prefix, buildId);
  await (platform === undefined ? redis.del(key) : redis.hdel(key, platform));
}

/** Progress by platform; entries that do not validate (another version's) are left out. */
export async function readProgress(
  redis: Redis,
  prefix: string,
  buildId: string,
): Promise<Map<string, PlatformProgress>> {
  const entries = await redis.hgetall(progressKey(prefix, buildId));
  const progress = new Map<string, PlatformProgress>();
  for (const [platform, value] of Object.entries(entries)) {
    const parsed = parseProgress(value);
    if (parsed) progress.set(platform, parsed);
  }
  return progress;
}

const count = (value: unknown) => typeof value === 'number' && Number.isInteger(value) && value > 0;

export function parseProgress(value: string): PlatformProgress | undefined {
  let data: Partial<PlatformProgress> | null;
  try {
    data = JSON.parse(value) as Partial<PlatformProgress> | null;
  } catch {
    return undefined;
  }
  if (!data || !PHASES.includes(data.phase ?? '') || typeof data.at !== 'string') return undefined;
  if (typeof data.retry !== 'number' || !Number.isInteger(data.retry)) return undefined;
  const progress: PlatformProgress = { phase: data.phase!, retry: data.retry, at: data.at };
  if (count(data.step) && count(data.steps)) Object.assign(progress, { step: data.step, steps: data.steps });
  if (progress.step && count(data.stage) && count(data.stages)) {
    Object.assign(progress, { stage: data.stage, stages: data.stages });
  }
  return progress;
}
