import { UnrecoverableError, Worker, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import { formatPlatform } from '@farm/domain';
import {
  buildQueueName,
  encodeAgentEvent,
  eventStreamKey,
  parsePlatformBuildJob,
  WORKER_LOCK_DURATION_MS,
  type AgentEvent,
  type PlatformBuildResult,
} from '@farm/queue';
import type { Builder } from './builders/builder';
import { LogShipper } from './log-shipper';

export interface AgentOptions {
  name: string;
  queuePrefix: string;
  concurrency: number;
  /** A connection with maxRetriesPerRequest: null (BullMQ workers block on Redis). */
  redis: Redis;
  builder: Builder;
  log: (message: string) => void;
}

/**
 * Takes jobs from its platform's queue only, builds them with its builder, streams the
 * output and reports start and end to the control plane (see libs/queue agent-protocol.ts).
 */
export class Agent {
  private worker?: Worker;
  private connection?: Redis;
  readonly platform: string;

  constructor(private readonly options: AgentOptions) {
    this.platform = formatPlatform(options.builder.platform);
  }

  start(): void {
    const { redis, queuePrefix, concurrency, name } = this.options;
    this.connection = redis.duplicate();
    this.worker = new Worker(buildQueueName(this.platform), (job, _token, signal) => this.process(job, signal), {
      connection: this.connection,
      prefix: queuePrefix,
      concurrency,
      name,
      lockDuration: WORKER_LOCK_DURATION_MS,
    });
    this.worker.on('error', (error) => this.options.log(`worker error: ${error.message}`));
    this.worker.on('failed', (job, error) => this.options.log(`job ${job?.id} failed: ${error.message}`));
    this.worker.on('completed', (job) => this.options.log(`job ${job.id} done`));
  }

  async stop(): Promise<void> {
    await this.worker?.close();
    // BullMQ leaves a connection it was handed open.
    this.connection?.disconnect();
  }

  async process(job: Job, signal: AbortSignal | undefined): Promise<PlatformBuildResult> {
    const data = parsePlatformBuildJob(job.data);
    if (data.platform !== this.platform) {
      throw new UnrecoverableError(`agent for ${this.platform} received a job for ${data.platform}`);
    }
    const { builder, name } = this.options;
    const attempt = job.attemptsMade + 1;
    const startedAt = new Date().toISOString();
    const logs = new LogShipper(this.options.redis, this.options.queuePrefix, data.buildId, data.platform);
    const context = { signal: signal ?? new AbortController().signal, log: logs.write };
    const event = { buildId: data.buildId, platform: data.platform, agent: name, emulated: builder.emulated, attempt };

    await this.emit({ type: 'platform.started', ...event, at: startedAt });
    logs.write(`[farm] ${name} building ${data.platform} (attempt ${attempt})`);
    try {
      await builder.setup(data, context);
      const image = await builder.run(data, context);
      const result: PlatformBuildResult = {
        platform: data.platform,
        ...image,
        emulated: builder.emulated,
        agent: name,
        startedAt,
        finishedAt: new Date().toISOString(),
      };
      await logs.flush();
      await this.emit({
        type: 'platform.ended',
        ...event,
        status: 'succeeded',
        final: true,
        result,
        at: result.finishedAt,
      });
      return result;
    } catch (error) {
      const message = (error as Error).message;
      const final = error instanceof UnrecoverableError || attempt >= (job.opts.attempts ?? 1);
      logs.write(`[farm] ${final ? 'failed' : 'attempt failed, will retry'}: ${message}`);
      await logs.flush();
      await this.emit({
        type: 'platform.ended',
        ...event,
        status: 'failed',
        final,
        error: message,
        at: new Date().toISOString(),
      });
      throw error;
    } finally {
      await builder.destroy(data).catch((error: Error) => this.options.log(`cleanup failed: ${error.message}`));
    }
  }

  private async emit(event: AgentEvent): Promise<void> {
    try {
      await this.options.redis.xadd(eventStreamKey(this.options.queuePrefix), '*', ...encodeAgentEvent(event));
    } catch (error) {
      // Events only make status live; the job's own result is authoritative.
      this.options.log(`could not report ${event.type}: ${(error as Error).message}`);
    }
  }
}
