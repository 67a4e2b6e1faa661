import { Inject, Injectable, Logger, type OnApplicationBootstrap, type OnApplicationShutdown } from '@nestjs/common';
import { Worker, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import type { CoordinatorConfig } from '@farm/config';
import { BuildRepository, type BuildWithPlatforms } from '@farm/db';
import { isTerminal } from '@farm/domain';
import { runWithLogContext } from '@farm/logging';
import {
  buildQueueName,
  parsePlatformBuildResult,
  parsePublishJob,
  PUBLISH_QUEUE,
  WORKER_OPTIONS,
  type PlatformBuildResult,
} from '@farm/queue';
import { ForgeStatuses } from './forge-statuses';
import { PlatformOutcomes } from './platform-outcomes';
import { platformImage, Publisher } from './publisher';
import { COORDINATOR_CONFIG, REDIS } from './tokens';

/** How each platform of a build ended, as BullMQ recorded it on the parent. */
interface ChildOutcomes {
  results: Map<string, PlatformBuildResult>;
  failures: Map<string, string>;
}

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
    const handle = (job: Job) =>
      runWithLogContext({ buildId: String(job.data?.buildId ?? '') }, () => this.process(job));
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

  async process(job: Job): Promise<{ digest?: string; status: string }> {
    const { buildId } = parsePublishJob(job.data);
    const build = await this.builds.find(buildId);
    if (!build) {
      // The build row is gone (deleted, or the api removed it after a failed enqueue): drop the flow.
      this.logger.warn(`publish job ${job.id} for unknown build ${buildId}: dropped`);
      return { status: 'dropped' };
    }
    if (isTerminal(build.status)) return { status: build.status, digest: build.digest ?? undefined };

    const { results, failures } = await this.childOutcomes(job, build);
    for (const platform of build.platforms) {
      const result = results.get(platform.platform);
      await this.outcomes.record(buildId, platform.platform, {
        status: result ? 'succeeded' : 'failed',
        digest: result?.digest,
        mediaType: result?.mediaType,
        size: result?.size,
        agent: result?.agent,
        emulated: result?.emulated,
        startedAt: result ? new Date(result.startedAt) : undefined,
        finishedAt: result ? new Date(result.finishedAt) : new Date(),
        error: result ? undefined : (failures.get(platform.platform) ?? 'the platform ended without a result'),
      });
    }

    const failed = build.platforms.filter((p) => !results.has(p.platform));
    if (failed.length > 0) {
      // The recorded error is the first one known (an agent's, or the scheduler's).
      const recorded = await this.builds.find(buildId);
      const errorOf = (platform: string) =>
        recorded?.platforms.find((p) => p.platform === platform)?.error ?? failures.get(platform) ?? 'no result';
      const error = failed.map((p) => `${p.platform}: ${errorOf(p.platform)}`).join('; ');
      await this.builds.finish(buildId, { status: 'failed', error });
      this.statuses.buildFinished(buildId, false, `not published: ${error}`);
      return { status: 'failed' };
    }

    const published = await this.publisher.publish({
      source: parsePublishJob(job.data).pushTo,
      images: build.platforms.map((p) => {
        const result = results.get(p.platform)!;
        return platformImage(p.platform, result.digest, result.mediaType, result.size);
      }),
      tags: build.tags,
      annotations: {
        'org.opencontainers.image.revision': build.commit,
        'org.opencontainers.image.source': build.repo,
      },
    });
    await this.builds.finish(buildId, { status: 'succeeded', ...published });
    this.statuses.buildFinished(buildId, true, `published ${published.digest}`);
    return { status: 'succeeded', digest: published.digest };
  }

  /** Reads the children's return values and ignored failures, keyed by platform. */
  private async childOutcomes(job: Job, build: BuildWithPlatforms): Promise<ChildOutcomes> {
    const platformByQueue = new Map(
      build.platforms.map((p) => [buildQueueName(p.platform, build.requires), p.platform]),
    );
    const platformOf = (jobKey: string) => platformByQueue.get(jobKey.split(':')[1] ?? '');
    const results = new Map<string, PlatformBuildResult>();
    const failures = new Map<string, string>();
    for (const [key, value] of Object.entries(await job.getChildrenValues())) {
      const platform = platformOf(key);
      if (platform) results.set(platform, parsePlatformBuildResult(value));
    }
    for (const [key, reason] of Object.entries(await job.getIgnoredChildrenFailures())) {
      const platform = platformOf(key);
      if (platform) failures.set(platform, reason);
    }
    return { results, failures };
  }

  /** The publish job exhausted its attempts (or cannot succeed): the build fails with the reason. */
  private async failedForGood(job: Job, error: Error): Promise<void> {
    try {
      // A failed attempt that BullMQ will retry leaves the job delayed, not failed.
      if (!(await job.isFailed())) return;
      const { buildId } = parsePublishJob(job.data);
      await this.builds.finish(buildId, { status: 'failed', error: `publishing the index failed: ${error.message}` });
      this.statuses.buildFinished(buildId, false, `publishing failed: ${error.message}`);
    } catch (recordError) {
      this.logger.error(`could not record failed publish ${job.id}: ${(recordError as Error).message}`);
    }
  }
}
