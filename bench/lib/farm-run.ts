import { QueueEvents } from 'bullmq';
import type { Redis } from 'ioredis';
import { buildQueueName, createRedisConnection, platformJobId, PUBLISH_QUEUE, publishJobId } from '@farm/queue';
import type { TestFarm } from '../../test/helpers/farm';

/** The parts of `GET /v1/builds/{id}` the bench reads. */
export interface BuildRecord {
  id: string;
  status: string;
  digest: string | null;
  error: string | null;
  createdAt: string;
  finishedAt: string | null;
  platforms: { platform: string; status: string; startedAt: string | null; finishedAt: string | null }[];
}

/** When BullMQ recorded a job's state changes (epoch ms, from the queue's event stream ids). */
export interface JobTimeline {
  waiting?: number;
  active?: number;
  completed?: number;
}

/** One farm build as the client saw it, plus the farm's own timestamps. */
export interface FarmRun {
  totalMs: number;
  build: BuildRecord;
  /** When the client sent the POST, in epoch milliseconds (the farm's timestamps are too). */
  submittedAt: number;
  /** When the client knew the build had succeeded, in epoch milliseconds. */
  doneAt: number;
  /** Each platform's job, by platform. */
  platformJobs: Record<string, JobTimeline>;
  publishJob: JobTimeline;
}

export interface FarmBuildRequest {
  repoUrl: string;
  commit: string;
  platforms: string[];
  tags: string[];
}

/** How often the client asks anyway, in case a completion event was missed (it should not be). */
const SAFETY_POLL_MS = 1_000;
const TIMEOUT_MS = 120_000;
const TRACKED_EVENTS = ['waiting', 'active', 'completed'] as const;

/**
 * Submits builds over the REST API and learns they ended from the coordinator's publish job
 * completing (BullMQ queue events on the farm's own prefix) instead of polling the API, so the
 * client adds no load to the farm it measures; one GET then reads the outcome. The same events
 * say when each job was queued, taken and finished.
 */
export class FarmClient {
  private readonly waiters = new Map<string, () => void>();
  /** Publish jobs that ended, so an event that comes before anyone waits for it is not lost. */
  private readonly ended = new Set<string>();
  private readonly timelines = new Map<string, JobTimeline>();

  private constructor(
    private readonly farm: TestFarm,
    private readonly listeners: { connection: Redis; events: QueueEvents }[],
  ) {
    for (const { events } of listeners) {
      for (const name of TRACKED_EVENTS) {
        events.on(name, ({ jobId }: { jobId: string }, id: string) => this.record(jobId, name, id));
      }
    }
    const publish = listeners[0].events;
    const wake = ({ jobId }: { jobId: string }) => {
      const waiter = this.waiters.get(jobId);
      if (waiter) waiter();
      else this.ended.add(jobId);
    };
    publish.on('completed', wake);
    publish.on('failed', wake);
  }

  static async connect(farm: TestFarm, redisUrl: string, platforms: string[]): Promise<FarmClient> {
    const listeners: { connection: Redis; events: QueueEvents }[] = [];
    try {
      for (const queue of [PUBLISH_QUEUE, ...platforms.map((p) => buildQueueName(p))]) {
        // QueueEvents blocks on its connection: one each.
        const connection = createRedisConnection(redisUrl);
        const events = new QueueEvents(queue, { connection, prefix: farm.queuePrefix });
        listeners.push({ connection, events });
        await events.waitUntilReady();
      }
    } catch (error) {
      await closeAll(listeners);
      throw error;
    }
    return new FarmClient(farm, listeners);
  }

  async build(request: FarmBuildRequest): Promise<FarmRun> {
    const submittedAt = Date.now();
    const started = performance.now();
    const submitted = await this.farm.request('POST', '/v1/builds', {
      repo: request.repoUrl,
      commit: request.commit,
      platforms: request.platforms,
      tags: request.tags,
    });
    if (submitted.status !== 202) {
      throw new Error(`POST /v1/builds: ${submitted.status} ${JSON.stringify(submitted.body)}`);
    }
    const id = (submitted.body as BuildRecord).id;
    const build = await this.waitForEnd(id);
    const totalMs = performance.now() - started;
    const doneAt = Date.now();
    if (build.status !== 'succeeded') {
      throw new Error(`build ${id} ${build.status}: ${build.error ?? ''}\n${this.farm.output().slice(-4000)}`);
    }
    const take = (jobId: string) => {
      const timeline = this.timelines.get(jobId) ?? {};
      this.timelines.delete(jobId);
      return timeline;
    };
    const platformJobs = Object.fromEntries(request.platforms.map((p) => [p, take(platformJobId(id, p))]));
    return { totalMs, build, submittedAt, doneAt, platformJobs, publishJob: take(publishJobId(id)) };
  }

  close(): Promise<void> {
    return closeAll(this.listeners);
  }

  private record(jobId: string, event: (typeof TRACKED_EVENTS)[number], streamId: string): void {
    const timeline = this.timelines.get(jobId) ?? {};
    // The first time counts: a retried job would be waiting/active again.
    timeline[event] ??= Number(streamId.split('-')[0]);
    this.timelines.set(jobId, timeline);
  }

  private async waitForEnd(id: string): Promise<BuildRecord> {
    const deadline = Date.now() + TIMEOUT_MS;
    const jobId = publishJobId(id);
    try {
      for (;;) {
        const ended = this.publishEnded(jobId, SAFETY_POLL_MS);
        const build = (await this.farm.request('GET', `/v1/builds/${id}`)).body as BuildRecord;
        if (['succeeded', 'failed', 'canceled'].includes(build.status)) return build;
        if (Date.now() > deadline) {
          throw new Error(`build ${id} still ${build.status}\n${this.farm.output().slice(-4000)}`);
        }
        await ended;
      }
    } finally {
      this.waiters.get(jobId)?.();
      this.ended.delete(jobId);
    }
  }

  /** Resolves when the publish job ends or after `timeoutMs`, whichever comes first. */
  private publishEnded(jobId: string, timeoutMs: number): Promise<void> {
    return new Promise((resolve) => {
      if (this.ended.delete(jobId)) return resolve();
      const done = () => {
        clearTimeout(timer);
        this.waiters.delete(jobId);
        resolve();
      };
      const timer = setTimeout(done, timeoutMs);
      this.waiters.set(jobId, done);
    });
  }
}

async function closeAll(listeners: { connection: Redis; events: QueueEvents }[]): Promise<void> {
  for (const { connection, events } of listeners) {
    await events.close().catch(() => undefined);
    connection.disconnect();
  }
}
