import { Inject, Injectable, Logger, type OnApplicationBootstrap, type OnApplicationShutdown } from '@nestjs/common';
import { FlowProducer, Queue, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import type { CoordinatorConfig } from '@farm/config';
import {
  BuildRepository,
  IDEMPOTENCY_KEY_TTL_MS,
  PrismaService,
  runExclusively,
  type BuildSummary,
  type UnfinishedCursor,
} from '@farm/db';
import { flowForBuild, PUBLISH_QUEUE, publishJobId } from '@farm/queue';
import { COORDINATOR_CONFIG, REDIS } from './tokens';

const RECONCILE_INTERVAL_MS = 5_000;
/**
 * A build younger than this may still be between its database write and its enqueue (the api
 * writes the row, adds the flow, then marks it enqueued): left alone until then.
 */
export const ENQUEUE_GRACE_MS = 5_000;
/**
 * A publish job whose build row is missing may belong to a transaction that has not committed
 * yet (the flow is added inside it; Prisma's transactions time out after 5 s): dropped only
 * after this long.
 */
const ORPHAN_GRACE_MS = 30_000;
/** Rows and jobs looked at per pass, so a pass stays short however long the queue is. */
const BATCH = 500;
/** One reconciler at a time across coordinator replicas (PostgreSQL advisory lock key). */
const RECONCILE_LOCK = 0x66726563; // "frec"

const ENDED: readonly string[] = ['succeeded', 'failed', 'canceled'];

/** Publish states in which the parent has not run yet: its flow would still build something. */
const PENDING_STATES = ['waiting-children', 'waiting', 'delayed', 'prioritized'] as const;

/**
 * Repairs what a crash or an outage left between PostgreSQL and the queue, every few seconds,
 * on one coordinator at a time:
 * - a build accepted but never enqueued (the api died between its write and its enqueue), or
 *   whose flow is missing from Redis while it is still queued, gets its flow added, once: job
 *   ids derive from the build, and a flow is added only when its parent job does not exist
 *   (adding a flow whose parent exists would re-link a child that already failed, and the
 *   parent would wait for it forever);
 * - a flow whose build row is gone is removed (its platforms would be built for nothing);
 * - a build left `queued` or `running` although its publish job has ended gets the state that
 *   job should have recorded (e.g. while PostgreSQL was unreachable): a completed publish runs
 *   again (it derives the state and publishes), a failed one fails the build with its reason;
 * - a running build whose jobs are gone from Redis ends with a reason instead of running forever;
 * - idempotency keys older than a day are released.
 */
@Injectable()
export class Reconciler implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger(Reconciler.name);
  private publishQueue!: Queue;
  private flows!: FlowProducer;
  private timer?: NodeJS.Timeout;
  private running?: Promise<void>;
  /** Where the next pass goes on checking unfinished builds (undefined: from the oldest). */
  private unfinishedCursor?: UnfinishedCursor;

  constructor(
    private readonly prisma: PrismaService,
    private readonly builds: BuildRepository,
    @Inject(REDIS) private readonly redis: Redis,
    @Inject(COORDINATOR_CONFIG) private readonly config: CoordinatorConfig,
  ) {}

  onApplicationBootstrap(): void {
    this.publishQueue = new Queue(PUBLISH_QUEUE, { connection: this.redis, prefix: this.config.queuePrefix });
    this.flows = new FlowProducer({ connection: this.redis, prefix: this.config.queuePrefix });
    this.timer = setInterval(() => {
      this.running ??= this.reconcileOnce()
        .catch((error: Error) => this.logger.error(`reconciler: ${error.message}`))
        .finally(() => (this.running = undefined));
    }, RECONCILE_INTERVAL_MS);
  }

  async onApplicationShutdown(): Promise<void> {
    clearInterval(this.timer);
    await this.running;
    await Promise.all([this.publishQueue?.close(), this.flows?.close()]);
  }

  /** One pass, if no other coordinator is reconciling right now. */
  async reconcileOnce(): Promise<void> {
    await runExclusively(this.prisma, RECONCILE_LOCK, 60_000, async () => {
      const settled = new Date(Date.now() - ENQUEUE_GRACE_MS);
      for (const build of await this.builds.unenqueued(settled, BATCH)) await this.enqueueAccepted(build);
      const page = await this.builds.unfinished(settled, BATCH, this.unfinishedCursor);
      for (const build of page) await this.checkUnfinished(build);
      // A deeper queue is walked a page per pass; after the last page, from the oldest again.
      const last = page.at(-1);
      this.unfinishedCursor = page.length === BATCH && last ? { createdAt: last.createdAt, id: last.id } : undefined;
      await this.dropOrphanFlows();
      await this.builds.releaseIdempotencyKeys(new Date(Date.now() - IDEMPOTENCY_KEY_TTL_MS));
    });
  }

  /** Accepted, never marked enqueued: the api stopped between its write and its enqueue (or just after it). */
  private async enqueueAccepted(build: BuildSummary): Promise<void> {
    if (await this.addFlowIfMissing(build)) {
      this.logger.warn(`build ${build.id} was accepted but never enqueued: its flow is added now`);
    }
    await this.builds.markEnqueued(build.id);
  }

  private async checkUnfinished(build: BuildSummary): Promise<void> {
    const jobId = publishJobId(build.id, build.retries);
    const state = await this.publishQueue.getJobState(jobId);
    if (state === 'unknown') return this.flowMissing(build);
    if (state === 'failed') {
      // The publish failed for good but recording it did not happen (PostgreSQL was unreachable).
      const job = await this.publishQueue.getJob(jobId);
      const error = `publishing the index failed: ${job?.failedReason || 'unknown error'}`;
      await this.builds.finish(build.id, { status: 'failed', error }, build.retries);
      this.logger.warn(`build ${build.id}: its publish job had failed unrecorded; the build failed: ${error}`);
    } else if (state === 'completed') {
      // The publish ran without ending the build (it found no row, or could not write it):
      // run it again; it derives the state from its children's results and publishes.
      const job = await this.publishQueue.getJob(jobId);
      if (!job || Date.now() - (job.finishedOn ?? 0) < ENQUEUE_GRACE_MS) return;
      await job.retry('completed');
      this.logger.warn(`build ${build.id} was still ${build.status} after its publish job completed: publishing again`);
    }
  }

  /**
   * The build's publish job is not in Redis. Queued, with no platform of this run started: the
   * flow never made it (or was lost), so it is added, once. Otherwise its platforms' jobs are
   * gone too and nothing would ever end the build: it fails with the reason, for a retry.
   */
  private async flowMissing(build: BuildSummary): Promise<void> {
    const toBuild = platformsOfRun(build);
    const untouched = toBuild.every((p) => p.status === 'queued' || p.status === 'unschedulable');
    if (build.status === 'queued' && untouched) {
      if (await this.addFlowIfMissing(build)) {
        this.logger.warn(`build ${build.id} was queued without a flow in Redis: its flow is added now`);
      }
      return;
    }
    const unfinished = toBuild.filter((p) => !ENDED.includes(p.status)).map((p) => p.platform);
    const failed = build.platforms.filter((p) => p.status === 'failed' || p.status === 'canceled');
    const error =
      unfinished.length > 0
        ? `its jobs are gone from the queue while ${unfinished.join(', ')} had not ended (was Redis' data lost?); retry the build`
        : failed.length > 0
          ? failed.map((p) => `${p.platform}: ${p.error ?? p.status}`).join('; ')
          : 'every platform succeeded but the publish job is gone from the queue (was Redis data lost?); retry the build to publish them';
    await this.builds.finish(build.id, { status: 'failed', error }, build.retries);
    this.logger.warn(`build ${build.id} was ${build.status} without its jobs in Redis: failed: ${error}`);
  }

  /** Adds the flow of the build's current run unless its parent job exists. True if added. */
  private async addFlowIfMissing(build: BuildSummary): Promise<boolean> {
    if ((await this.publishQueue.getJobState(publishJobId(build.id, build.retries))) !== 'unknown') return false;
    await this.flows.add(
      flowForBuild(build, { platforms: platformsOfRun(build).map((p) => p.platform), retry: build.retries }),
    );
    return true;
  }

  /** Publish jobs not run yet whose build row is gone: their flow is removed with its children. */
  private async dropOrphanFlows(): Promise<void> {
    const jobs = (await this.publishQueue.getJobs([...PENDING_STATES], 0, BATCH - 1)).filter(
      (job): job is Job => !!job && Date.now() - job.timestamp > ORPHAN_GRACE_MS,
    );
    if (jobs.length === 0) return;
    const buildIdOf = (job: Job) => String(job.data?.buildId ?? '');
    const existing = await this.builds.existingIds(jobs.map(buildIdOf));
    for (const job of jobs.filter((j) => !existing.has(buildIdOf(j)))) {
      try {
        await job.remove();
        this.logger.warn(`dropped the flow ${job.id} of build ${buildIdOf(job)}: the build no longer exists`);
      } catch (error) {
        // A child an agent is building holds a lock; once it ends, the publish job finds no
        // build and drops itself.
        this.logger.warn(
          `flow ${job.id} of the deleted build ${buildIdOf(job)} not removed yet: ${(error as Error).message}`,
        );
      }
    }
  }
}

/** The platforms the build's current run builds: all at first; on a retry, those that did not succeed. */
function platformsOfRun(build: BuildSummary): BuildSummary['platforms'] {
  return build.retries > 0 ? build.platforms.filter((p) => p.status !== 'succeeded') : build.platforms;
}
