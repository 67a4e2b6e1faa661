import { DelayedError, UnrecoverableError, WaitingError, Worker, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import { formatPlatform } from '@farm/domain';
import {
  affineAgent,
  agentQueueNames,
  cancelChannel,
  claimHandover,
  canceledJobs,
  encodeAgentEvent,
  eventStreamKey,
  maskSecrets,
  openSecrets,
  parsePlatformBuildJob,
  readAgentCommand,
  recordAffinity,
  removePresence,
  shouldLeaveFor,
  WORKER_OPTIONS,
  writePresence,
  type AgentEvent,
  type AgentJob,
  type AgentPresence,
  type AgentState,
  type PlatformBuildJob,
  type PlatformBuildResult,
} from '@farm/queue';
import type { Builder, BuildContext } from './builders/builder';
import { jobFailure } from './failures';
import { LogShipper } from './log-shipper';
import { ProgressReporter } from './progress-reporter';

export interface AgentOptions {
  /** Unique in the farm; the API addresses the agent by it. */
  name: string;
  version: string;
  queuePrefix: string;
  /** Jobs this agent runs at once, over all its queues. */
  concurrency: number;
  labels: string[];
  /** `local` or the SSH builder's URL. */
  backend: string;
  /** A connection with maxRetriesPerRequest: null (BullMQ workers block on Redis). */
  redis: Redis;
  builder: Builder;
  log: (message: string) => void;
  /** FARM_SECRETS_KEY: opens the build secrets the api sealed. */
  secretsKey?: Buffer;
  heartbeatIntervalMs?: number;
  heartbeatTimeoutMs?: number;
}

/** Re-offer a job taken while every slot was busy after this long. */
const BUSY_RETRY_MS = 250;
/** How long a job left for its affine agent keeps this slot, so that agent takes it, not this one. */
const HANDOVER_WAIT_MS = 50;
const HANDOVER_POLL_MS = 5;
/** The abort reason of a job canceled on request (other aborts: BullMQ closing the worker). */
const CANCELED = 'canceled on request';

/**
 * Takes jobs only from its platform's queues (one per subset of its labels), builds them with
 * its builder, streams the output, reports start and end, and heartbeats its presence (see
 * libs/queue agent-protocol.ts and agent-presence.ts). Drain stops it taking new jobs while
 * the running ones finish.
 */
export class Agent {
  readonly platform: string;
  private readonly workers: Worker[] = [];
  private readonly connections: Redis[] = [];
  private readonly running = new Map<string, AgentJob>();
  private readonly startedAt = new Date().toISOString();
  private state: AgentState = 'online';
  private drainedByCommand = false;
  private heartbeat?: NodeJS.Timeout;
  private idle?: () => void;
  /** Receives cancel messages (a subscribed connection can do nothing else). */
  private subscriber?: Redis;
  /**
   * What follows each job (its work dir removed; with the storage to itself, a canceled build's
   * leftovers removed and the caches pruned when the disk fills): jobs start after it.
   */
  private storageWork: Promise<void> = Promise.resolve();
  /** Jobs being canceled, so that the heartbeat's repeated check logs each once. */
  private readonly canceling = new Set<string>();

  constructor(private readonly options: AgentOptions) {
    this.platform = formatPlatform(options.builder.platform);
  }

  get heartbeatTimeoutMs(): number {
    return this.options.heartbeatTimeoutMs ?? 10_000;
  }

  async start(): Promise<void> {
    const { redis, queuePrefix, concurrency, name, labels } = this.options;
    for (const queue of agentQueueNames(this.platform, labels)) {
      const connection = redis.duplicate();
      const worker = new Worker(queue, (job, token, signal) => this.process(job, token, signal), {
        connection,
        prefix: queuePrefix,
        concurrency,
        name,
        ...WORKER_OPTIONS,
      });
      worker.on('error', (error) => this.options.log(`worker error: ${error.message}`));
      worker.on('failed', (job, error) => {
        if (!(error instanceof DelayedError)) this.options.log(`job ${job?.id} failed: ${error.message}`);
      });
      worker.on('completed', (job) => this.options.log(`job ${job.id} done`));
      this.workers.push(worker);
      this.connections.push(connection);
    }
    await this.listenForCancels();
    await this.beat();
    this.heartbeat = setInterval(() => void this.beat(), this.options.heartbeatIntervalMs ?? 2_000);
  }

  /** Cancel messages stop a running job at once; the heartbeat's check catches any missed one. */
  private async listenForCancels(): Promise<void> {
    const { redis, queuePrefix } = this.options;
    this.subscriber = redis.duplicate();
    this.subscriber.on('message', (_channel: string, jobId: string) => this.cancel(jobId));
    await this.subscriber.subscribe(cancelChannel(queuePrefix));
  }

  /** Aborts a job this agent runs (its builder kills the build); false if it runs no such job. */
  cancel(jobId: string): boolean {
    let canceled = false;
    // BullMQ tracks the job from the moment it is taken, before process() even runs.
    for (const worker of this.workers) canceled = worker.cancelJob(jobId, CANCELED) || canceled;
    if (canceled && !this.canceling.has(jobId)) {
      this.canceling.add(jobId);
      this.options.log(`job ${jobId} canceled`);
    }
    return canceled;
  }

  /** Takes no new job; running ones go on. */
  async drain(): Promise<void> {
    if (this.state === 'draining') return;
    this.state = 'draining';
    await Promise.all(this.workers.map((worker) => worker.pause(true)));
    this.options.log('draining: taking no new jobs');
    await this.beat();
  }

  async undrain(): Promise<void> {
    if (this.state === 'online') return;
    this.state = 'online';
    this.resumeIfFree();
    this.options.log('taking jobs again');
    await this.beat();
  }

  /**
   * Drains, lets running jobs finish within `graceMs`, then stops: jobs still running after it
   * are abandoned to BullMQ, which hands them to another agent once their lock lapses.
   */
  async shutdown(graceMs: number): Promise<void> {
    await this.drain();
    if (this.running.size > 0) {
      this.options.log(`waiting up to ${Math.round(graceMs / 1000)} s for ${this.running.size} running job(s)`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, graceMs);
        this.idle = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
    clearInterval(this.heartbeat);
    await this.storageWork;
    await Promise.all(this.workers.map((worker) => worker.close(this.running.size > 0)));
    // BullMQ leaves connections it was handed open.
    this.connections.forEach((connection) => connection.disconnect());
    this.subscriber?.disconnect();
    await removePresence(this.options.redis, this.options.queuePrefix, this.options.name).catch(() => undefined);
  }

  async process(job: Job, token: string | undefined, signal: AbortSignal | undefined): Promise<PlatformBuildResult> {
    // Several queues feed one agent: a job taken while every slot is busy goes back, untouched.
    if (this.running.size >= this.options.concurrency || this.state === 'draining') {
      await job.moveToDelayed(Date.now() + BUSY_RETRY_MS, token);
      throw new DelayedError();
    }
    const data = parsePlatformBuildJob(job.data);
    if (data.platform !== this.platform) {
      throw new UnrecoverableError(`agent for ${this.platform} received a job for ${data.platform}`);
    }
    const missing = (data.requires ?? []).filter((label) => !this.options.labels.includes(label));
    if (missing.length > 0) throw new UnrecoverableError(`agent lacks the required labels ${missing.join(', ')}`);

    const { builder, name, redis, queuePrefix } = this.options;
    // Canceled while it waited (or before its agent was lost): not started, not retried.
    if ((await canceledJobs(redis, queuePrefix, [String(job.id)])).length > 0) {
      throw new UnrecoverableError('canceled before it started');
    }
    if (await this.leaveForAffineAgent(job, token, data)) throw new WaitingError();
    // Attempts that failed plus attempts lost with their agent (stalled), plus this one.
    const attempt = job.attemptsMade + job.stalledCounter + 1;
    const retry = data.retry ?? 0;
    const startedAt = new Date().toISOString();
    this.track(job, { buildId: data.buildId, platform: data.platform, jobId: String(job.id), startedAt });
    const logs = new LogShipper(redis, queuePrefix, data.buildId, data.platform);
    const progress = new ProgressReporter(redis, queuePrefix, data.buildId, data.platform, retry);
    const abort = signal ?? new AbortController().signal;
    // Build secrets are masked in everything the job writes: its log and its error.
    const log = (line: string) => {
      const masked = maskSecrets(line, context.secrets ?? {});
      logs.write(masked);
      progress.line(masked);
    };
    const context: BuildContext = { signal: abort, log, onPhase: progress.phase, secrets: {} };
    const event = {
      buildId: data.buildId,
      platform: data.platform,
      agent: name,
      emulated: builder.emulated,
      attempt,
      ...(retry > 0 ? { retry } : {}),
    };

    await this.emit({ type: 'platform.started', ...event, at: startedAt });
    logs.write(`[farm] ${name} building ${data.platform} (attempt ${attempt})`);
    let canceled = false;
    try {
      progress.phase('preparing');
      // Sealed by the api with FARM_SECRETS_KEY; in clear only here, for buildah's --secret files.
      if (data.secrets) context.secrets = openSecrets(data.secrets, this.options.secretsKey, data.buildId);
      await this.storageWork;
      await builder.setup(data, context);
      progress.phase('building');
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
      await Promise.all([
        this.emit({
          type: 'platform.ended',
          ...event,
          status: 'succeeded',
          final: true,
          result,
          at: result.finishedAt,
        }),
        this.rememberRepository(data),
      ]);
      return result;
    } catch (caught) {
      if (abort.aborted && abort.reason === CANCELED) {
        canceled = true;
        logs.write('[farm] canceled');
        await logs.flush();
        await this.emit({
          type: 'platform.ended',
          ...event,
          status: 'canceled',
          final: true,
          at: new Date().toISOString(),
        });
        // Fails the job for good: its publish parent runs, finds the build canceled, publishes nothing.
        throw new UnrecoverableError('canceled');
      }
      const error = jobFailure(caught, data);
      // The message is stored (BullMQ's failedReason, the build's error): no secret in it.
      error.message = maskSecrets(error.message, context.secrets ?? {});
      const message = error.message;
      const final = error instanceof UnrecoverableError || job.attemptsMade + 1 >= (job.opts.attempts ?? 1);
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
      // What follows a job runs after BullMQ has been told it ended, so the build goes on (its
      // publish) meanwhile; the next job here starts once it is done. Only while no other job
      // builds (the storage is shared): a canceled build's leftovers, and caches when the disk fills.
      const alone = this.running.size === 1;
      this.storageWork = this.storageWork.then(async () => {
        await builder.destroy(data).catch((error: Error) => this.options.log(`cleanup failed: ${error.message}`));
        await progress.clear();
        if (canceled && builder.removeLeftovers && alone) {
          await builder
            .removeLeftovers()
            .catch((error: Error) =>
              this.options.log(`removing a canceled build's leftovers failed: ${error.message}`),
            );
        }
        if (builder.pruneCaches && alone) {
          await builder
            .pruneCaches()
            .catch((error: Error) => this.options.log(`pruning the caches failed: ${error.message}`));
        }
      });
      this.untrack(job);
    }
  }

  /**
   * Cache affinity (libs/queue affinity.ts): puts the job back, once, for the agent that built
   * its repository last when that agent is free, and keeps this slot for up to HANDOVER_WAIT_MS
   * so that the freed job goes to that agent rather than straight back to this one. True if the
   * job was left; false to build it here.
   */
  private async leaveForAffineAgent(job: Job, token: string | undefined, data: PlatformBuildJob): Promise<boolean> {
    const { redis, queuePrefix, name, builder } = this.options;
    // Without a cache to reuse (or a repository to key it by) any agent is as good.
    if (!token || !data.repo || data.noCache) return false;
    let leftFor: string;
    try {
      const affine = await affineAgent(redis, queuePrefix, data.platform, data.repo);
      if (!shouldLeaveFor(affine, { name, emulated: builder.emulated }, data)) return false;
      if (!(await claimHandover(redis, queuePrefix, String(job.id)))) return false;
      await job.moveToWait(token);
      leftFor = affine.name;
    } catch (error) {
      // Affinity is an optimisation: when in doubt, build.
      this.options.log(`cache affinity: ${(error as Error).message}`);
      return false;
    }
    const left = Date.now();
    let waiting = true;
    while (waiting && Date.now() - left < HANDOVER_WAIT_MS) {
      await new Promise((resolve) => setTimeout(resolve, HANDOVER_POLL_MS));
      waiting = (await job.getState().catch(() => 'unknown')) === 'waiting';
    }
    const outcome = waiting ? `still waiting after ${HANDOVER_WAIT_MS} ms` : `taken within ${Date.now() - left} ms`;
    this.options.log(`job ${job.id} left for ${leftFor}, which built ${data.repo} last (${outcome})`);
    return true;
  }

  /** This agent's caches now hold the repository: later builds of it prefer this agent. */
  private async rememberRepository(data: PlatformBuildJob): Promise<void> {
    if (!data.repo) return;
    const { redis, queuePrefix, name } = this.options;
    await recordAffinity(redis, queuePrefix, data.platform, data.repo, name).catch((error: Error) =>
      this.options.log(`could not record cache affinity: ${error.message}`),
    );
  }

  private track(job: Job, current: AgentJob): void {
    this.running.set(String(job.id), current);
    if (this.running.size >= this.options.concurrency) {
      // Full: stop fetching until a slot frees (a job fetched meanwhile is re-offered above).
      for (const worker of this.workers) void worker.pause(true);
    }
    void this.beat();
  }

  private untrack(job: Job): void {
    this.running.delete(String(job.id));
    this.canceling.delete(String(job.id));
    if (this.running.size === 0) this.idle?.();
    this.resumeIfFree();
    void this.beat();
  }

  private resumeIfFree(): void {
    if (this.state === 'online' && this.running.size < this.options.concurrency) {
      for (const worker of this.workers) if (worker.isPaused()) void worker.resume();
    }
  }

  /** Presence and commands: writes this agent's state, applies drain / undrain and cancel requests. */
  private async beat(): Promise<void> {
    const { redis, queuePrefix, name } = this.options;
    try {
      for (const jobId of await canceledJobs(redis, queuePrefix, [...this.running.keys()])) this.cancel(jobId);
      const command = await readAgentCommand(redis, queuePrefix, name);
      if (command === 'drain' && this.state === 'online') {
        this.drainedByCommand = true;
        await this.drain();
        return;
      }
      if (command === 'active' && this.state === 'draining' && this.drainedByCommand) {
        this.drainedByCommand = false;
        await this.undrain();
        return;
      }
      await writePresence(redis, queuePrefix, this.presence());
    } catch (error) {
      this.options.log(`heartbeat: ${(error as Error).message}`);
    }
  }

  private presence(): AgentPresence {
    const { name, version, builder, labels, backend, concurrency } = this.options;
    return {
      id: name,
      name,
      version,
      platforms: [this.platform],
      emulated: builder.emulated,
      labels,
      backend,
      concurrency,
      state: this.state,
      currentJobs: [...this.running.values()],
      startedAt: this.startedAt,
      lastSeenAt: new Date().toISOString(),
      heartbeatTimeoutMs: this.heartbeatTimeoutMs,
    };
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
