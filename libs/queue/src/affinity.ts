import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';
import { agentServes, type AgentPresence } from './agent-presence';
import { affinityKey, agentsKey, handoverKey } from './names';

/**
 * Cache affinity (part of the agent protocol, see agent-protocol.ts): a build goes preferably
 * to the agent that built the same repository last for its platform, if that agent is free;
 * never at the price of waiting for it.
 *
 * Agents pull jobs from a shared queue, so a job cannot be addressed to one of them. Instead,
 * after each success an agent records itself as the repository's affine agent; an agent that
 * takes a job whose affine agent is another one, online and with a free slot, puts the job
 * back at the head of the queue once, where the affine agent (idle, so blocked on the queue)
 * takes it within milliseconds. If it does not (it just got busy or died), the job is built by
 * whoever takes it next: a job is left at most once.
 */

/** Agents forget a repository they have not built for this long (their caches get pruned). */
const AFFINITY_TTL_SECONDS = 7 * 24 * 60 * 60;
/** Long enough to cover every encounter of one job; its retries have other job ids. */
const HANDOVER_TTL_SECONDS = 24 * 60 * 60;

function repoHash(repo: string): string {
  return createHash('sha256').update(repo).digest('hex');
}

/** Records `agent` as the one that built `repo` for `platform` last. */
export async function recordAffinity(
  redis: Redis,
  prefix: string,
  platform: string,
  repo: string,
  agent: string,
): Promise<void> {
  await redis.set(affinityKey(prefix, platform, repoHash(repo)), agent, 'EX', AFFINITY_TTL_SECONDS);
}

/** The presence of the agent that built `repo` for `platform` last, if it is still registered. */
export async function affineAgent(
  redis: Redis,
  prefix: string,
  platform: string,
  repo: string,
): Promise<AgentPresence | undefined> {
  const name = await redis.get(affinityKey(prefix, platform, repoHash(repo)));
  if (!name) return undefined;
  const presence = await redis.hget(agentsKey(prefix), name);
  if (!presence) return undefined;
  try {
    return JSON.parse(presence) as AgentPresence;
  } catch {
    return undefined;
  }
}

/**
 * Should `self` leave a job for `affine`? Only if that is another agent that can build it now:
 * online, serving the platform and the required labels, with a free slot, and not emulating a
 * platform `self` builds natively (emulation is a last resort, never a cache's price).
 */
export function shouldLeaveFor(
  affine: AgentPresence | undefined,
  self: { name: string; emulated: boolean },
  job: { platform: string; requires?: readonly string[] },
  now = Date.now(),
): affine is AgentPresence {
  if (!affine || affine.name === self.name) return false;
  if (!agentServes(affine, job.platform, job.requires ?? [], now)) return false;
  if ((affine.currentJobs ?? []).length >= affine.concurrency) return false;
  return !affine.emulated || self.emulated;
}

/** True the first time a job is left for another agent, false ever after. */
export async function claimHandover(redis: Redis, prefix: string, jobId: string): Promise<boolean> {
  return (await redis.set(handoverKey(prefix, jobId), '1', 'EX', HANDOVER_TTL_SECONDS, 'NX')) === 'OK';
}
