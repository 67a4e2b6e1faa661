import { formatPlatform, parsePlatform, platformQueueName, type Platform } from '@farm/domain';

/**
 * Queue, job and key names: the one catalog every process agrees on.
 *
 * Every Redis key lives under the configured prefix (default `farm`), so a Redis ACL such as
 * `~farm:* &farm:*` fences agents to the farm's keys (DESIGN.md).
 */

/** The coordinator's queue: one parent job per build, processed once every platform ended. */
export const PUBLISH_QUEUE = 'publish';
export const PUBLISH_JOB = 'publish';
export const PLATFORM_BUILD_JOB = 'build';

/** Agent labels: what a build may require of the agent that builds it (e.g. "large"). */
export const LABEL_PATTERN = /^[a-z0-9][a-z0-9-]{0,31}$/;
/** An agent consumes one queue per subset of its labels, so their number stays small. */
export const MAX_AGENT_LABELS = 5;

/**
 * `build.linux.arm64` and so on: one queue per platform, consumed only by agents that run it.
 * A build that requires labels goes to `build.linux.arm64+large+ssd` (labels sorted), which
 * only agents carrying all of them consume: routing stays strict without any job inspection.
 */
export function buildQueueName(platform: Platform | string, requires: readonly string[] = []): string {
  const labels = [...new Set(requires)].sort();
  return [platformQueueName(platform), ...labels].join('+');
}

/** Every queue an agent of `platform` with `labels` consumes: one per subset of its labels. */
export function agentQueueNames(platform: Platform | string, labels: readonly string[]): string[] {
  const unique = [...new Set(labels)].sort();
  const subsets: string[][] = [[]];
  for (const label of unique) subsets.push(...subsets.map((subset) => [...subset, label]));
  return subsets.map((subset) => buildQueueName(platform, subset));
}

/**
 * Job ids are derived from the build id and its run (0, then 1 for the first retry, ...), so
 * adding the same run's flow twice finds the existing jobs instead of creating a second flow
 * (BullMQ ignores an add with an existing id), while a retry's jobs never meet the old ones.
 */
export function publishJobId(buildId: string, retry = 0): string {
  return `publish-${buildId}${runSuffix(retry)}`;
}

export function platformJobId(buildId: string, platform: Platform | string, retry = 0): string {
  const name = typeof platform === 'string' ? formatPlatform(parsePlatform(platform)) : formatPlatform(platform);
  return `build-${buildId}-${name.replace(/\//g, '-')}${runSuffix(retry)}`;
}

/** The first run keeps the ids jobs had before retries existed. */
function runSuffix(retry: number): string {
  return retry > 0 ? `-r${retry}` : '';
}

/** String key set when a job is canceled: an agent that holds or takes the job stops it. */
export function cancelKey(prefix: string, jobId: string): string {
  return `${prefix}:cancel:${jobId}`;
}

/** Pub/sub channel telling agents that a job was canceled (the message is the job id). */
export function cancelChannel(prefix: string): string {
  return `${prefix}:cancels`;
}

/** Hash of platform -> PlatformProgress JSON: what each running platform of a build is doing. */
export function progressKey(prefix: string, buildId: string): string {
  return `${prefix}:progress:${buildId}`;
}

/** Redis stream holding one platform's build log lines while it runs (capped). */
export function logStreamKey(prefix: string, buildId: string, platform: string): string {
  return `${prefix}:logs:${buildId}:${platform}`;
}

/** Redis stream of agent -> control plane events (see agent-protocol.ts). */
export function eventStreamKey(prefix: string): string {
  return `${prefix}:events`;
}

/** Hash of agent id -> AgentPresence JSON, written by each agent on every heartbeat. */
export function agentsKey(prefix: string): string {
  return `${prefix}:agents`;
}

/** Hash of agent id -> "drain" | "active": what operators asked each agent to be. */
export function agentCommandsKey(prefix: string): string {
  return `${prefix}:agents:commands`;
}

/**
 * String key naming the agent that last built `repoHash` (sha256 of the repository URL) for
 * `platform`: its layer cache and git mirror are the warmest for that repository.
 */
export function affinityKey(prefix: string, platform: string, repoHash: string): string {
  return `${prefix}:affinity:${platform}:${repoHash}`;
}

/** String key set when a job was left for its affine agent: a job is left at most once. */
export function handoverKey(prefix: string, jobId: string): string {
  return `${prefix}:handover:${jobId}`;
}
