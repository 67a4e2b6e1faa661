/** Status of a whole build, as the REST API reports it. */
export type BuildStatus = 'queued' | 'running' | 'succeeded' | 'failed' | 'canceled';
/** Status of one platform of a build. */
export type PlatformBuildStatus = 'queued' | 'running' | 'succeeded' | 'failed' | 'canceled';

/** Every status, e.g. for validating a filter or a DTO. */
export const BUILD_STATUSES: readonly BuildStatus[] = ['queued', 'running', 'succeeded', 'failed', 'canceled'];

/** Statuses that do not change by themselves (only a retry leaves failed or canceled). */
export const TERMINAL_BUILD_STATUSES: readonly BuildStatus[] = ['succeeded', 'failed', 'canceled'];

/** Whether the status is final: succeeded, failed or canceled. */
export function isTerminal(status: BuildStatus | PlatformBuildStatus): boolean {
  return TERMINAL_BUILD_STATUSES.includes(status);
}

const TRANSITIONS: Readonly<Record<BuildStatus, readonly BuildStatus[]>> = {
  queued: ['running', 'failed', 'canceled'],
  running: ['succeeded', 'failed', 'canceled'],
  succeeded: [],
  // A retry re-queues what failed or was canceled.
  failed: ['queued'],
  canceled: ['queued'],
};

/**
 * Whether a build (or a platform build) may go from `from` to `to`. Staying in the same status is
 * not a transition (false): callers mirroring events should treat a repeat as a no-op.
 */
export function canTransition(from: BuildStatus, to: BuildStatus): boolean {
  return Object.hasOwn(TRANSITIONS, from) && TRANSITIONS[from].includes(to);
}

/**
 * The build's status implied by its platforms, before publishing:
 * - all queued -> queued;
 * - any running, or some ended and some still queued -> running;
 * - all ended: any failed -> failed, else any canceled -> canceled;
 * - all succeeded -> running: the build succeeds only once the coordinator has published the
 *   index, which this function cannot know.
 *
 * @throws Error for an empty list: a build always has at least one platform.
 */
export function statusFromPlatforms(platforms: readonly PlatformBuildStatus[]): BuildStatus {
  if (platforms.length === 0) throw new Error('statusFromPlatforms: a build has at least one platform');
  if (platforms.every((s) => s === 'queued')) return 'queued';
  if (!platforms.every(isTerminal)) return 'running';
  if (platforms.includes('failed')) return 'failed';
  if (platforms.includes('canceled')) return 'canceled';
  return 'running';
}
