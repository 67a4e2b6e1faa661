import { Inject, Injectable, Logger, type OnApplicationBootstrap, type OnApplicationShutdown } from '@nestjs/common';
import { DelayedError, UnrecoverableError, Worker, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import type { CoordinatorConfig } from '@farm/config';
import { BuildRepository, isDatabaseUnavailable, type PlatformBuild, type PublishClaim } from '@farm/db';
import { isTerminal, type PlatformImage } from '@farm/domain';
import { runWithLogContext } from '@farm/logging';
import { RegistryError } from '@farm/oci';
import {
  buildQueueName,
  parsePlatformBuildResult,
  parsePublishJob,
  PUBLISH_QUEUE,
  WORKER_OPTIONS,
  type PlatformBuildResult,
  type PublishJob,
} from '@farm/queue';
import { ForgeStatuses } from './forge-statuses';
import { PlatformOutcomes } from './platform-outcomes';
import { platformImage, Publisher } from './publisher';
import { COORDINATOR_CONFIG, REDIS } from './tokens';

/**
 * While PostgreSQL is unreachable a publish is put back for this long, without spending one of
 * its attempts: an outage longer than the attempts' backoff must not fail (or strand) a build.
 */
const DATABASE_WAIT_MS = 2_000;

const PLATFORM_ENDED = new Set<PlatformBuild['status']>(['succeeded', 'failed', 'canceled']);

/** What BullMQ recorded on the parent of how its children ended, keyed by child job key. */
interface ChildrenEnded {
  values: Record<string, unknown>;
  failures: Record<string, string>;
}

/** How each platform of a build ended, keyed by platform. */
interface ChildOutcomes {
  results: Map<string, PlatformBuildResult>;
  failures: Map<string, string>;
}

/** The platform rows a publish looks at. */
type PlatformRow = Pick<PlatformBuild, 'platform' | 'status' | 'digest' | 'mediaType' | 'size'>;

/**
 * Consumes `publish` parent jobs, which BullMQ releases once every platform child has ended.
 * Every platform succeeded: assemble and publish the index. Otherwise: the build fails, the
 * platforms that succeeded keep their results, and no tag is created or moved.
 */
@Injectable()
export class PublishWorker implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger(PublishWorker.name);
  private worker?: Worker;
  private connection?: Redis;

  constructor(
    private readonly builds: BuildRepository,
    private readonly outcomes: PlatformOutcomes,
    private readonly publisher: Publisher,
    private readonly statuses: ForgeStatuses,
    @Inject(REDIS) private readonly redis: Redis,
    @Inject(COORDINATOR_CONFIG) private readonly config: CoordinatorConfig,
  ) {}

  onApplicationBootstrap(): void {
    this.connection = this.redis.duplicate();
    // Every log line of a publish names its build.
    const handle = (job: Job, token?: string) =>
      runWithLogContext({ buildId: String(job.data?.buildId ?? '') }, () => this.processWhenDatabaseUp(job, token));
    this.worker = new Worker(PUBLISH_QUEUE, handle, {
      connection: this.connection,
      prefix: this.config.queuePrefix,
      concurrency: 8,
      ...WORKER_OPTIONS,
    });
    this.worker.on('error', (error) => this.logger.error(`publish worker: ${error.message}`));
    this.worker.on('failed', (job, error) => {
      if (job) void this.failedForGood(job, error);
    });
  }

  async onApplicationShutdown(): Promise<void> {
    await this.worker?.close();
    // BullMQ leaves a connection it was handed open.
    this.connection?.disconnect();
  }

  /**
   * process(), put back while PostgreSQL is unreachable. A publish is idempotent (an ended build
   * is left alone, the same index bytes are pushed again), so running it again is safe.
   */
  private async processWhenDatabaseUp(job: Job, token?: string): Promise<{ digest?: string; status: string }> {
    try {
      return await this.process(job);
    } catch (error) {
      // The registry refused the index (denied, invalid, unknown child): the same bytes will be
      // refused again, so the build fails now with the registry's words instead of after 5 attempts.
      if (error instanceof RegistryError && error.status !== undefined && !error.retryable) {
        throw new UnrecoverableError(error.message);
      }
      if (!token || !isDatabaseUnavailable(error) || (await this.databaseAnswers())) throw error;
      this.logger.warn(`publish job ${job.id}: database unavailable, trying again in ${DATABASE_WAIT_MS} ms`);
      await job.moveToDelayed(Date.now() + DATABASE_WAIT_MS, token);
      throw new DelayedError();
    }
  }

  /**
   * A refused or reset connection looks the same whether PostgreSQL or a registry refused it:
   * only when the database itself does not answer does the publish wait for it; otherwise the
   * error is the registry's and takes the usual attempts.
   */
  private async databaseAnswers(): Promise<boolean> {
    try {
      await this.builds.ping();
      return true;
    } catch {
      return false;
    }
  }

  /**
   * The usual case, no platform failed, is on every build's critical path: the children's
   * outcomes (Redis), then one statement that claims the build and returns what the index needs,
   * then the index pushed while the outcomes the agent events have not recorded yet are recorded,
   * then the build finished. Anything else (a platform failed; the build ended, is gone or was
   * retried) takes the general path, which reads the build first.
   */
  async process(job: Job): Promise<{ digest?: string; status: string }> {
    const publish = parsePublishJob(job.data);
    const retry = publish.retry ?? 0;
    const children = await this.childrenEnded(job);
    if (Object.keys(children.failures).length === 0) {
      const claimed = await this.builds.claimPublish(publish.buildId, retry);
      if (claimed) {
        const published = await this.publishClaimed(publish, claimed, children);
        if (published) return published;
      }
    }
    return this.processRead(job, publish, children);
  }

  /**
   * Publishes a claimed build whose platforms all have an image, recording the outcomes the agent
   * events have not recorded yet meanwhile. Undefined, with nothing done, when one lacks an image.
   */
  private async publishClaimed(
    publish: PublishJob,
    build: PublishClaim,
    children: ChildrenEnded,
  ): Promise<{ digest: string; status: string } | undefined> {
    const { buildId } = publish;
    const retry = publish.retry ?? 0;
    const built = this.builtPlatforms(publish, build.platforms);
    const outcomes = childOutcomes(children, build.platforms, build.requires);
    const images = platformImages(build.platforms, built, outcomes);
    if (images.size < build.platforms.length) return undefined;
    const [published] = await Promise.all([
      this.publisher.publish({
        source: publish.pushTo,
        images: [...images.values()],
        tags: build.tags,
        annotations: annotations(build),
      }),
      this.recordOutcomes(buildId, build.platforms, built, outcomes, retry),
    ]);
    await this.builds.finish(buildId, { status: 'succeeded', ...published }, retry);
    this.statuses.buildFinished(buildId, true, `published ${published.digest}`);
    return { status: 'succeeded', digest: published.digest };
  }

  /** The general path: reads the build, then fails it, leaves it alone, or publishes it. */
  private async processRead(
    job: Job,
    publish: PublishJob,
    children: ChildrenEnded,
  ): Promise<{ digest?: string; status: string }> {
    const { buildId } = publish;
    const retry = publish.retry ?? 0;
    const build = await this.builds.findWithoutLogs(buildId);
    if (!build) {
      // The build row is gone (deleted, or the api removed it after a failed enqueue): drop the flow.
      this.logger.warn(`publish job ${job.id} for unknown build ${buildId}: dropped`);
      return { status: 'dropped' };
    }
    if (build.retries !== retry) {
      // A run the build was retried after (its jobs outlived a cancel): the current run publishes.
      this.logger.warn(
        `publish job ${job.id} is of run ${retry}, build ${buildId} is in run ${build.retries}: dropped`,
      );
      return { status: 'superseded' };
    }
    if (isTerminal(build.status)) return { status: build.status, digest: build.digest ?? undefined };

    const built = this.builtPlatforms(publish, build.platforms);
    const outcomes = childOutcomes(children, build.platforms, build.requires);
    await this.recordOutcomes(buildId, build.platforms, built, outcomes, retry);

    const images = platformImages(build.platforms, built, outcomes);
    const failed = build.platforms.filter((p) => !images.has(p.platform));
    if (failed.length > 0) {
      // The recorded error is the first one known (an agent's, or the scheduler's).
      const recorded = await this.builds.findWithoutLogs(buildId);
      const errorOf = (platform: string) =>
        recorded?.platforms.find((p) => p.platform === platform)?.error ??
        outcomes.failures.get(platform) ??
        'no result';
      const error = failed.map((p) => `${p.platform}: ${errorOf(p.platform)}`).join('; ');
      await this.builds.finish(buildId, { status: 'failed', error }, retry);
      this.statuses.buildFinished(buildId, false, `not published: ${error}`);
      return { status: 'failed' };
    }

    // From here on a cancel is refused; one that came first wins, and nothing is published.
    if (!(await this.builds.claimPublish(buildId, retry))) {
      this.logger.log(`build ${buildId} ended (canceled) or was retried before publishing: not published`);
      return { status: 'not published' };
    }
    const published = await this.publisher.publish({
      source: publish.pushTo,
      images: [...images.values()],
      tags: build.tags,
      annotations: annotations(build),
    });
    await this.builds.finish(buildId, { status: 'succeeded', ...published }, retry);
    this.statuses.buildFinished(buildId, true, `published ${published.digest}`);
    return { status: 'succeeded', digest: published.digest };
  }

  /** The platforms this run built; the others succeeded in an earlier run and are reused as recorded. */
  private builtPlatforms(publish: PublishJob, platforms: PlatformRow[]): Set<string> {
    return new Set(publish.platforms ?? platforms.map((p) => p.platform));
  }

  /**
   * Records how the platforms this run built ended, those the agent events have not recorded as
   * ended yet (usually none: reading and archiving their logs again would be wasted), one row
   * each, written side by side.
   */
  private async recordOutcomes(
    buildId: string,
    platforms: PlatformRow[],
    built: Set<string>,
    { results, failures }: ChildOutcomes,
    retry: number,
  ): Promise<void> {
    const unrecorded = platforms.filter((p) => built.has(p.platform) && !PLATFORM_ENDED.has(p.status));
    await Promise.all(
      unrecorded.map((platform) => {
        const result = results.get(platform.platform);
        return this.outcomes.record(
          buildId,
          platform.platform,
          {
            status: result ? 'succeeded' : 'failed',
            digest: result?.digest,
            mediaType: result?.mediaType,
            size: result?.size,
            agent: result?.agent,
            emulated: result?.emulated,
            startedAt: result ? new Date(result.startedAt) : undefined,
            finishedAt: result ? new Date(result.finishedAt) : new Date(),
            error: result ? undefined : (failures.get(platform.platform) ?? 'the platform ended without a result'),
          },
          retry,
        );
      }),
    );
  }

  /** The children's return values and ignored failures, as BullMQ recorded them (read side by side). */
  private async childrenEnded(job: Job): Promise<ChildrenEnded> {
    const [values, failures] = await Promise.all([job.getChildrenValues(), job.getIgnoredChildrenFailures()]);
    return { values, failures };
  }

  /** The publish job exhausted its attempts (or cannot succeed): the build fails with the reason. */
  private async failedForGood(job: Job, error: Error): Promise<void> {
    try {
      // A failed attempt that BullMQ will retry leaves the job delayed, not failed.
      if (!(await job.isFailed())) return;
      const { buildId, retry } = parsePublishJob(job.data);
      await this.builds.finish(
        buildId,
        { status: 'failed', error: `publishing the index failed: ${error.message}` },
        retry ?? 0,
      );
      this.statuses.buildFinished(buildId, false, `publishing failed: ${error.message}`);
    } catch (recordError) {
      this.logger.error(`could not record failed publish ${job.id}: ${(recordError as Error).message}`);
    }
  }
}

/** The children's outcomes keyed by platform (a child's job key names its queue). */
function childOutcomes(children: ChildrenEnded, platforms: PlatformRow[], requires: string[]): ChildOutcomes {
  const platformByQueue = new Map(platforms.map((p) => [buildQueueName(p.platform, requires), p.platform]));
  const platformOf = (jobKey: string) => platformByQueue.get(jobKey.split(':')[1] ?? '');
  const results = new Map<string, PlatformBuildResult>();
  const failures = new Map<string, string>();
  for (const [key, value] of Object.entries(children.values)) {
    const platform = platformOf(key);
    if (platform) results.set(platform, parsePlatformBuildResult(value));
  }
  for (const [key, reason] of Object.entries(children.failures)) {
    const platform = platformOf(key);
    if (platform) failures.set(platform, reason);
  }
  return { results, failures };
}

/**
 * The image of every platform that has one, keyed by platform in the build's order: this run's
 * result, or the one recorded in an earlier run for a platform this run did not build.
 */
function platformImages(
  platforms: PlatformRow[],
  built: Set<string>,
  { results }: ChildOutcomes,
): Map<string, PlatformImage> {
  const images = new Map<string, PlatformImage>();
  for (const p of platforms) {
    const result = built.has(p.platform) ? results.get(p.platform) : reusedResult(p);
    if (result) images.set(p.platform, platformImage(p.platform, result.digest, result.mediaType, result.size));
  }
  return images;
}

/** The index's annotations; an uploaded context (contextDigest) has no commit or repository to name. */
function annotations(build: Pick<PublishClaim, 'contextDigest' | 'commit' | 'repo'>): Record<string, string> {
  return build.contextDigest
    ? {}
    : { 'org.opencontainers.image.revision': build.commit, 'org.opencontainers.image.source': build.repo };
}

/** A platform that succeeded in an earlier run of the build, as recorded then. */
function reusedResult(p: PlatformRow): { digest: string; mediaType: string; size: number } | undefined {
  if (p.status !== 'succeeded' || !p.digest || !p.mediaType || !p.size) return undefined;
  return { digest: p.digest, mediaType: p.mediaType, size: p.size };
}
