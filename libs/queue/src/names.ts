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

/** `build.linux.arm64` and so on: one queue per platform, consumed only by agents that run it. */
export function buildQueueName(platform: Platform | string): string {
  return platformQueueName(platform);
}

/**
 * Job ids are derived from the build id, so adding the same build's flow twice finds the
 * existing jobs instead of creating a second flow (BullMQ ignores an add with an existing id).
 */
export function publishJobId(buildId: string): string {
  return `publish-${buildId}`;
}

export function platformJobId(buildId: string, platform: Platform | string): string {
  const name = typeof platform === 'string' ? formatPlatform(parsePlatform(platform)) : formatPlatform(platform);
  return `build-${buildId}-${name.replace(/\//g, '-')}`;
}

/** Redis stream holding one platform's build log lines while it runs (capped). */
export function logStreamKey(prefix: string, buildId: string, platform: string): string {
  return `${prefix}:logs:${buildId}:${platform}`;
}

/** Redis stream of agent -> control plane events (see agent-protocol.ts). */
export function eventStreamKey(prefix: string): string {
  return `${prefix}:events`;
}
