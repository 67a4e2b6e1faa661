import type { Platform } from '@farm/domain';
import type { BuildPhase, PlatformBuildJob } from '@farm/queue';

/** What a builder pushed: the platform's image manifest, by digest. */
export interface BuiltImage {
  digest: string;
  mediaType: string;
  size: number;
}

/** What a build step gets: a way to cancel it and a place to send its output. */
export interface BuildContext {
  signal: AbortSignal;
  log: (line: string) => void;
  /** Called as the job enters a phase the builder alone can tell (`pushing`), for the live view. */
  onPhase?: (phase: BuildPhase) => void;
  /**
   * The build secrets, id -> value, in clear: given to buildah as `--secret` files only (0600,
   * removed after the build), never as build args. `log` masks their values.
   */
  secrets?: Record<string, string>;
}

/**
 * Something a builder keeps between jobs that can go when the disk fills (see cache-pruner.ts):
 * a git mirror, the layer cache, ... Removing one only costs later builds time.
 */
export interface CachePruneStep {
  /** For the agent's log: what `remove` deletes. */
  what: string;
  remove(): Promise<void>;
}

/**
 * A backend that builds one platform (woodpecker's `backend.Backend` in spirit): local
 * buildah today, buildah on a remote host over SSH with the builder-pools work.
 *
 * For each job the agent calls setup, then run, then always destroy; destroy is idempotent
 * and must leave nothing of the job behind but caches.
 */
export interface Builder {
  /** The platform this builder runs jobs for. */
  readonly platform: Platform;
  /** True when the platform is executed through qemu-user emulation rather than natively. */
  readonly emulated: boolean;
  /** Fresh work dir with the source at exactly the job's commit. */
  setup(job: PlatformBuildJob, context: BuildContext): Promise<void>;
  /** Builds the image and pushes it by digest (no tag) to the job's target repository. */
  run(job: PlatformBuildJob, context: BuildContext): Promise<BuiltImage>;
  destroy(job: PlatformBuildJob): Promise<void>;
  /**
   * Removes what builds killed mid-way (canceled) left in the builder's storage, such as
   * buildah working containers. Called only while the builder runs no job.
   */
  removeLeftovers?(): Promise<void>;
  /**
   * The caches this builder keeps on the agent's disk, cheapest to lose first, as steps that each
   * remove some; the pruner takes them one at a time until the disk has room again. Computed
   * lazily (a step may look at the disk when its turn comes). Never yields what a job set up and
   * not yet destroyed uses.
   */
  cachePruneSteps?(): AsyncIterable<CachePruneStep>;
  /**
   * Prunes the caches when the disk holding them is too full (CachePruningBuilder); does nothing
   * otherwise. Called only while the builder runs no job.
   */
  pruneCaches?(): Promise<void>;
}
