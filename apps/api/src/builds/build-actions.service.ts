import { Inject, Injectable, Logger, type OnApplicationShutdown } from '@nestjs/common';
import { Queue, type FlowProducer } from 'bullmq';
import type { Redis } from 'ioredis';
import type { ApiConfig } from '@farm/config';
import { BuildRepository, type BuildWithPlatforms, type RetriedRun } from '@farm/db';
import {
  appendLogLines,
  flowForBuild,
  buildQueueName,
  clearProgress,
  encodeAgentEvent,
  eventStreamKey,
  platformJobId,
  requestCancel,
  type FarmEvent,
} from '@farm/queue';
import { ApiError } from '../common/api-error';
import { API_CONFIG, FLOW_PRODUCER, REDIS } from '../tokens';
import { toBuildView, type BuildView } from './build.view';

/** Job states a cancel removes from the queue: nothing has started them. */
const NOT_STARTED = new Set(['waiting', 'delayed', 'prioritized', 'waiting-children']);
const BUILD_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/**
 * `POST /v1/builds/{id}/cancel` and `/retry`.
 *
 * Cancel: the build and its unfinished platforms are canceled in PostgreSQL first (guarded, so
 * it races safely with the coordinator starting to publish: whichever comes first wins), then
 * its jobs are stopped: waiting ones removed from their queues, running ones aborted by their
 * agents (the cancel key and message of the agent protocol). The coordinator never publishes
 * a canceled build.
 *
 * Retry: a failed or canceled build starts its next run, which rebuilds only the platforms
 * that did not succeed (new job ids: `...-r<run>`) and publishes the index from their new
 * digests and the recorded digests of the others. Jobs of the earlier run that still run
 * change nothing: their events and publish job are of another run and are ignored.
 */
@Injectable()
export class BuildActionsService implements OnApplicationShutdown {
  private readonly logger = new Logger(BuildActionsService.name);
  private readonly queues = new Map<string, Queue>();

  constructor(
    private readonly builds: BuildRepository,
    @Inject(FLOW_PRODUCER) private readonly flows: FlowProducer,
    @Inject(REDIS) private readonly redis: Redis,
    @Inject(API_CONFIG) private readonly config: ApiConfig,
  ) {}

  async onApplicationShutdown(): Promise<void> {
    await Promise.all([...this.queues.values()].map((queue) => queue.close()));
  }

  async cancel(id: string): Promise<BuildView> {
    const build = await this.findOrThrow(id);
    if (build.status !== 'queued' && build.status !== 'running') {
      throw new ApiError('conflict', `build ${id} is ${build.status}: only a queued or running build can be canceled`);
    }
    const canceled = await this.builds.cancel(id, build.retries);
    if (!canceled) {
      const now = await this.findOrThrow(id);
      const why = now.publishingAt && now.status === 'running' ? 'publishing its index' : now.status;
      throw new ApiError('conflict', `build ${id} is ${why}: too late to cancel`);
    }
    await this.stopJobs(build, canceled);
    return toBuildView(await this.findOrThrow(id));
  }

  async retry(id: string): Promise<BuildView> {
    const build = await this.findOrThrow(id);
    if (build.status !== 'failed' && build.status !== 'canceled') {
      throw new ApiError('conflict', `build ${id} is ${build.status}: only a failed or canceled build can be retried`);
    }
    const run = await this.builds.retry(id, build.retries, (next) => this.enqueue(build, next));
    if (!run) throw new ApiError('conflict', `build ${id} was retried or changed meanwhile; reload it`);
    await this.announceRetry(build, run);
    // The build as retried: its agents may have started the run already, which GET shows.
    return toBuildView(run.build);
  }

  /** Adds the run's flow (inside the retry's transaction: a failure leaves the build as it was). */
  private async enqueue(build: BuildWithPlatforms, run: RetriedRun): Promise<void> {
    try {
      await this.flows.add(flowForBuild(build, { platforms: run.platforms, retry: run.retry }));
    } catch (error) {
      this.logger.error(`could not enqueue retry ${run.retry} of build ${build.id}: ${(error as Error).message}`);
      throw new ApiError('unavailable', 'the build queue is unavailable; the build was not retried, try again');
    }
  }

  /**
   * Stops the canceled platforms' jobs. Best effort once the build is canceled in PostgreSQL:
   * without Redis, a job runs to its end, but nothing of the build is published anyway.
   */
  private async stopJobs(build: BuildWithPlatforms, platforms: string[]): Promise<void> {
    const prefix = this.config.queuePrefix;
    const jobIds = platforms.map((platform) => platformJobId(build.id, platform, build.retries));
    try {
      // First the keys: a job an agent takes between now and its removal is not started.
      await requestCancel(this.redis, prefix, jobIds);
      for (const [i, platform] of platforms.entries()) {
        const job = await this.queue(buildQueueName(platform, build.requires)).getJob(jobIds[i]);
        if (!job || !NOT_STARTED.has(await job.getState())) continue;
        // Removing the last child releases the publish parent, which finds the build canceled.
        await job.remove().catch((error: Error) => {
          // Taken by an agent meanwhile: its cancel key stops it.
          this.logger.log(`job ${jobIds[i]} was not removed (${error.message}); its agent stops it`);
        });
      }
      await this.emit({ type: 'build.canceled', buildId: build.id, platforms, at: new Date().toISOString() });
    } catch (error) {
      this.logger.warn(
        `build ${build.id} canceled, but its jobs could not all be stopped: ${(error as Error).message}`,
      );
    }
  }

  /** The retried platforms' logs say where the new run begins; the forge hears "pending" again. */
  private async announceRetry(build: BuildWithPlatforms, run: RetriedRun): Promise<void> {
    const prefix = this.config.queuePrefix;
    try {
      await clearProgress(this.redis, prefix, build.id);
      for (const platform of run.platforms) {
        await appendLogLines(this.redis, prefix, build.id, platform, [`[farm] retry ${run.retry} of this build`]);
      }
      await this.emit({ type: 'build.accepted', buildId: build.id, at: new Date().toISOString() });
    } catch (error) {
      this.logger.warn(`retry ${run.retry} of build ${build.id} queued; announcing it failed: ${String(error)}`);
    }
  }

  private async emit(event: FarmEvent): Promise<void> {
    await this.redis.xadd(eventStreamKey(this.config.queuePrefix), '*', ...encodeAgentEvent(event));
  }

  private queue(name: string): Queue {
    let queue = this.queues.get(name);
    if (!queue) {
      queue = new Queue(name, { connection: this.redis, prefix: this.config.queuePrefix });
      this.queues.set(name, queue);
    }
    return queue;
  }

  private async findOrThrow(id: string): Promise<BuildWithPlatforms> {
    const build = BUILD_ID.test(id) ? await this.builds.find(id) : null;
    if (!build) throw new ApiError('not_found', `build ${id} not found`);
    return build;
  }
}
