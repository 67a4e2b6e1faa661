import { Inject, Injectable, Logger, type OnApplicationShutdown } from '@nestjs/common';
import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';
import type { ApiConfig } from '@farm/config';
import { MetricsRepository } from '@farm/db';
import { BUILD_STATUSES } from '@farm/domain';
import { agentQueueNames, agentStatus, buildQueueName, readPresences, type AgentStatus } from '@farm/queue';
import { ApiError } from '../common/api-error';
import { API_CONFIG, REDIS } from '../tokens';
import { DURATION_BUCKETS, LATENCY_BUCKETS, registerComputedHistogram, WAIT_BUCKETS } from './computed-histogram';

const AGENT_STATUSES: readonly AgentStatus[] = ['online', 'draining', 'offline'];

/**
 * The farm's Prometheus metrics, computed when scraped: counts and histograms from PostgreSQL
 * (so they survive restarts and every api replica reports the same farm-wide numbers), queue
 * depths from BullMQ and agents from their heartbeats in Redis; plus prom-client's default
 * process metrics (CPU, memory, event loop) of this replica.
 */
@Injectable()
export class FarmMetrics implements OnApplicationShutdown {
  readonly registry = new Registry();
  private readonly logger = new Logger(FarmMetrics.name);
  /** One BullMQ Queue per platform queue seen, reused across scrapes (they share the api's connection). */
  private readonly queues = new Map<string, Queue>();

  constructor(
    private readonly queries: MetricsRepository,
    @Inject(REDIS) private readonly redis: Redis,
    @Inject(API_CONFIG) private readonly config: ApiConfig,
  ) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry });

    const builds = new Gauge({
      name: 'buildfarm_builds',
      help: 'Builds by status.',
      labelNames: ['status'],
      registers,
      collect: async () => {
        const rows = await this.queries.buildsByStatus();
        builds.reset();
        for (const status of BUILD_STATUSES) builds.set({ status }, 0);
        for (const row of rows) builds.set({ status: row.status }, row.count);
      },
    });

    const platformBuilds = new Gauge({
      name: 'buildfarm_platform_builds',
      help: 'Platform builds by platform and status (unschedulable: no online agent serves the platform).',
      labelNames: ['platform', 'status'],
      registers,
      collect: async () => {
        const rows = await this.queries.platformBuildsByStatus();
        platformBuilds.reset();
        for (const row of rows) platformBuilds.set({ platform: row.platform, status: row.status }, row.count);
      },
    });

    const agents = new Gauge({
      name: 'buildfarm_agents',
      help: 'Agents by platform and status (online, draining, offline), from their heartbeats.',
      labelNames: ['platform', 'status'],
      registers,
      collect: async () => {
        const now = Date.now();
        const presences = await readPresences(this.redis, this.config.queuePrefix);
        agents.reset();
        for (const agent of presences) {
          for (const platform of agent.platforms) {
            for (const status of AGENT_STATUSES) agents.inc({ platform, status }, 0);
            agents.inc({ platform, status: agentStatus(agent, now) });
          }
        }
      },
    });

    const queueDepth = new Gauge({
      name: 'buildfarm_queue_depth',
      help:
        'Jobs in the build queues of a platform by state (waiting, delayed, active); one queue per platform ' +
        'and set of required agent labels. Depth per platform: sum by (platform).',
      labelNames: ['platform', 'queue', 'state'],
      registers,
      collect: async () => {
        const counts = await this.queueCounts();
        queueDepth.reset();
        for (const { platform, queue, waiting, delayed, active } of counts) {
          queueDepth.set({ platform, queue, state: 'waiting' }, waiting);
          queueDepth.set({ platform, queue, state: 'delayed' }, delayed);
          queueDepth.set({ platform, queue, state: 'active' }, active);
        }
      },
    });

    const deliveries = new Counter({
      name: 'buildfarm_webhook_deliveries_total',
      help:
        'Webhook deliveries by outcome: build, ping, ignored, invalid, failed, and rejected (bad or missing ' +
        'signature, never stored).',
      labelNames: ['outcome'],
      registers,
      collect: async () => {
        const rows = await this.queries.deliveriesByOutcome();
        deliveries.reset();
        for (const row of rows) deliveries.inc({ outcome: row.outcome }, row.count);
      },
    });

    registerComputedHistogram(this.registry, {
      name: 'buildfarm_build_duration_seconds',
      help: 'Duration of each ended platform build, from an agent taking it to its end, by platform and outcome.',
      labelNames: ['platform', 'status'],
      bounds: DURATION_BUCKETS,
      read: () => this.queries.buildDurations(DURATION_BUCKETS),
    });
    registerComputedHistogram(this.registry, {
      name: 'buildfarm_queue_wait_seconds',
      help: 'Time from a build request to an agent taking each of its platforms, by platform.',
      labelNames: ['platform'],
      bounds: WAIT_BUCKETS,
      read: () => this.queries.queueWaits(WAIT_BUCKETS),
    });
    registerComputedHistogram(this.registry, {
      name: 'buildfarm_publish_latency_seconds',
      help: "Time from a succeeded build's last platform ending to its index being published under every tag.",
      labelNames: [],
      bounds: LATENCY_BUCKETS,
      read: () => this.queries.publishLatencies(LATENCY_BUCKETS),
    });
  }

  /** Prometheus text exposition of every metric; 503 while PostgreSQL or Redis cannot answer. */
  async render(): Promise<string> {
    try {
      return await this.registry.metrics();
    } catch (error) {
      this.logger.warn(`scrape failed: ${(error as Error).message}`);
      throw new ApiError('unavailable', 'metrics unavailable: PostgreSQL or Redis did not answer');
    }
  }

  /**
   * Job counts of every build queue that agents consume (from their presences) or that builds
   * not yet ended wait in, so an empty queue of a known platform reports 0.
   */
  private async queueCounts() {
    const [presences, unfinished] = await Promise.all([
      readPresences(this.redis, this.config.queuePrefix),
      this.queries.unfinishedPlatforms(),
    ]);
    const platformOf = new Map<string, string>();
    for (const agent of presences) {
      for (const platform of agent.platforms) {
        for (const queue of agentQueueNames(platform, agent.labels)) platformOf.set(queue, platform);
      }
    }
    for (const { platform, requires } of unfinished) platformOf.set(buildQueueName(platform, requires), platform);

    return Promise.all(
      [...platformOf].map(async ([name, platform]) => {
        const counts = await this.queue(name).getJobCounts('waiting', 'prioritized', 'delayed', 'active');
        return {
          platform,
          queue: name,
          waiting: (counts.waiting ?? 0) + (counts.prioritized ?? 0),
          delayed: counts.delayed ?? 0,
          active: counts.active ?? 0,
        };
      }),
    );
  }

  private queue(name: string): Queue {
    let queue = this.queues.get(name);
    if (!queue) {
      queue = new Queue(name, { connection: this.redis, prefix: this.config.queuePrefix });
      this.queues.set(name, queue);
    }
    return queue;
  }

  async onApplicationShutdown(): Promise<void> {
    await Promise.all([...this.queues.values()].map((queue) => queue.close()));
  }
}
