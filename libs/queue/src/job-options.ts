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

/**
 * Workers of every queue. A build runs in a child process, so the event loop stays free to
 * renew locks (every lockDuration / 2 = 4 s; one missed renewal is tolerated): a lock that
 * lapses means the agent is gone. Its job is then stalled and moved back to the queue by the
 * next stalled check of another worker, so a lost agent's build restarts elsewhere within
 * lockDuration + stalledInterval (12 s, measured 8-12 s by test/faults/agent-kill.spec.ts;
 * BullMQ's defaults take up to a minute, 10 s + 5 s measured up to 14.5 s). maxStalledCount 2:
 * two host deaths on one job are survived, a third fails it ("job stalled more than allowable
 * limit"), so a job that kills its host cannot take down a whole pool. Stalls do not consume
 * `attempts`, which stay for real failures (registry, git host).
 */
export const WORKER_OPTIONS = {
  lockDuration: 8_000,
  stalledInterval: 4_000,
  maxStalledCount: 2,
} as const;
