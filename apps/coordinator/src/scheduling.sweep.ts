import { Inject, Injectable, Logger, type OnApplicationBootstrap, type OnApplicationShutdown } from '@nestjs/common';
import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import type { CoordinatorConfig } from '@farm/config';
import { BuildRepository, PrismaService, runExclusively, type OverduePlatform, type WaitingGroup } from '@farm/db';
import {
  agentServes,
  agentStatus,
  buildQueueName,
  platformJobId,
  readPresences,
  removePresence,
  type AgentPresence,
} from '@farm/queue';
import { PlatformOutcomes } from './platform-outcomes';
import { COORDINATOR_CONFIG, REDIS } from './tokens';

const SWEEP_INTERVAL_MS = 1_000;
/** Agents offline this long are forgotten. */
const FORGET_OFFLINE_AGENTS_MS = 24 * 60 * 60 * 1000;
/** One sweeper at a time across coordinator replicas (PostgreSQL advisory lock key). */
const SWEEP_LOCK = 0x6661726d; // "farm"

/**
 * Strict routing, surfaced: a platform no online agent serves is marked `unschedulable` with
 * the reason (and back to `queued` once an agent for it appears: its job waits in the queue and
 * is taken at once); with a `scheduleTimeout` it fails instead of waiting forever. Also forgets
 * agents that have been offline for a day.
 */
@Injectable()
export class SchedulingSweep implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger(SchedulingSweep.name);
  private readonly queues = new Map<string, Queue>();
  private timer?: NodeJS.Timeout;
  private running?: Promise<void>;

  constructor(
    private readonly prisma: PrismaService,
    private readonly builds: BuildRepository,
    private readonly outcomes: PlatformOutcomes,
    @Inject(REDIS) private readonly redis: Redis,
    @Inject(COORDINATOR_CONFIG) private readonly config: CoordinatorConfig,
  ) {}

  onApplicationBootstrap(): void {
    this.timer = setInterval(() => {
      this.running ??= this.sweepOnce()
        .catch((error: Error) => this.logger.error(`scheduling sweep: ${error.message}`))
        .finally(() => (this.running = undefined));
    }, SWEEP_INTERVAL_MS);
  }

  async onApplicationShutdown(): Promise<void> {
    clearInterval(this.timer);
    await this.running;
    await Promise.all([...this.queues.values()].map((queue) => queue.close()));
  }

  /** One pass, if no other coordinator is sweeping right now. */
  async sweepOnce(): Promise<void> {
    await runExclusively(this.prisma, SWEEP_LOCK, 30_000, async () => {
      const agents = await readPresences(this.redis, this.config.queuePrefix);
      const now = Date.now();
      for (const group of await this.builds.waitingGroups()) await this.schedule(group, agents, now);
      for (const overdue of await this.builds.overduePlatforms()) await this.expire(overdue, agents, now);
      await this.forgetOfflineAgents(agents, now);
    });
  }

  /** A whole group of waiting platforms at once: their cost does not grow with the queue. */
  private async schedule(group: WaitingGroup, agents: AgentPresence[], now: number): Promise<void> {
    if (agents.some((agent) => agentServes(agent, group.platform, group.requires, now))) {
      if (group.status === 'unschedulable') await this.builds.setGroupScheduling(group, null);
      return;
    }
    const reason = unschedulableReason(group.platform, group.requires, agents, now);
    if (group.status !== 'unschedulable' || group.statusReason !== reason) {
      await this.builds.setGroupScheduling(group, reason);
    }
  }

  /**
   * A platform past its build's scheduleTimeout that no agent serves fails with the reason; the
   * waiting job is removed so its parent no longer waits for it and runs once the other
   * platforms end, finding this one failed (and publishing nothing). One an agent serves is left
   * to its queue: the timeout is about nothing being able to build it, not about a busy pool.
   */
  private async expire(overdue: OverduePlatform, agents: AgentPresence[], now: number): Promise<void> {
    const { buildId, platform, requires } = overdue;
    if (agents.some((agent) => agentServes(agent, platform, requires, now))) return;
    const reason = unschedulableReason(platform, requires, agents, now);
    const error = `${reason} within the build's scheduleTimeout of ${overdue.scheduleTimeout} s`;
    await this.outcomes.record(buildId, platform, { status: 'failed', error, finishedAt: new Date() }, overdue.retries);
    const queueName = buildQueueName(platform, requires);
    let queue = this.queues.get(queueName);
    if (!queue) {
      queue = new Queue(queueName, { connection: this.redis, prefix: this.config.queuePrefix });
      this.queues.set(queueName, queue);
    }
    const job = await queue.getJob(platformJobId(buildId, platform, overdue.retries));
    // A job an agent took meanwhile is left to finish; its platform already counts as failed.
    if (job && (await job.isWaiting())) await job.remove();
    this.logger.warn(`build ${buildId} ${platform}: ${error}`);
  }

  private async forgetOfflineAgents(agents: AgentPresence[], now: number): Promise<void> {
    for (const agent of agents) {
      if (now - Date.parse(agent.lastSeenAt) > FORGET_OFFLINE_AGENTS_MS) {
        await removePresence(this.redis, this.config.queuePrefix, agent.id);
      }
    }
  }
}

/** Says why nothing takes the platform: no agent at all, or which ones exist but cannot. */
export function unschedulableReason(
  platform: string,
  requires: readonly string[],
  agents: AgentPresence[],
  now: number,
): string {
  const withLabels = requires.length ? ` with labels ${requires.join(', ')}` : '';
  const candidates = agents.filter(
    (agent) => agent.platforms.includes(platform) && requires.every((label) => agent.labels.includes(label)),
  );
  const unavailable = candidates.map((agent) => `${agent.name} is ${agentStatus(agent, now)}`);
  return `no online agent serves ${platform}${withLabels}${unavailable.length ? ` (${unavailable.join('; ')})` : ''}`;
}
