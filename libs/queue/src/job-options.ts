import type { JobsOptions } from 'bullmq';

/**
 * Default options for every job the farm adds, in one place (STYLE.md "one job catalog").
 * BullMQ owns retries: a handler throws to retry and throws UnrecoverableError for what will
 * fail again.
 */

const DAY = 24 * 60 * 60;

/** A platform build: retried for infrastructure faults (git host, registry, lost agent). */
export const PLATFORM_BUILD_JOB_OPTIONS: JobsOptions = {
  attempts: 3,
  backoff: { type: 'exponential', delay: 2_000 },
  // The parent must run even when a platform failed for good: it records the failure and
  // ends the build instead of leaving it waiting for children forever. Failures are read back
  // with getIgnoredChildrenFailures(), and nothing is published unless every platform succeeded.
  ignoreDependencyOnFailure: true,
  removeOnComplete: { age: 7 * DAY, count: 10_000 },
  removeOnFail: { age: 14 * DAY, count: 10_000 },
};

/** The publish parent: merging digests into an index is cheap and idempotent, so retry it more. */
export const PUBLISH_JOB_OPTIONS: JobsOptions = {
  attempts: 5,
  backoff: { type: 'exponential', delay: 1_000 },
  removeOnComplete: { age: 7 * DAY, count: 10_000 },
  removeOnFail: { age: 14 * DAY, count: 10_000 },
};

/** How long a worker's lock on a job lasts before BullMQ considers the job stalled. */
export const WORKER_LOCK_DURATION_MS = 30_000;
