import { Inject, Injectable, Logger, type OnApplicationBootstrap, type OnApplicationShutdown } from '@nestjs/common';
import { hostname } from 'node:os';
import type { Redis } from 'ioredis';
import type { CoordinatorConfig } from '@farm/config';
import { BuildRepository, isDatabaseUnavailable } from '@farm/db';
import { decodeAgentEvent, eventStreamKey, type FarmEvent, type PlatformEndedEvent } from '@farm/queue';
import { ForgeStatuses } from './forge-statuses';
import { PlatformOutcomes } from './platform-outcomes';
import { COORDINATOR_CONFIG, REDIS } from './tokens';

const GROUP = 'coordinators';
const BLOCK_MS = 2_000;
/** Entries a crashed coordinator read but never acknowledged are taken over after this. */
const CLAIM_IDLE_MS = 60_000;

type StreamEntries = [id: string, fields: string[]][];

/**
 * Mirrors agent events (platform started / ended) into PostgreSQL as they happen, so the API
 * shows live per-platform status. Read through a consumer group: each event is handled by
 * one coordinator replica and acknowledged after it is stored.
 */
@Injectable()
export class AgentEventsConsumer implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger(AgentEventsConsumer.name);
  private readonly consumer = `${hostname()}-${process.pid}`;
  private readonly key: string;
  private stopped = false;
  private loop?: Promise<void>;
  private reader?: Redis;

  constructor(
    private readonly builds: BuildRepository,
    private readonly outcomes: PlatformOutcomes,
    private readonly statuses: ForgeStatuses,
    @Inject(REDIS) private readonly redis: Redis,
    @Inject(COORDINATOR_CONFIG) config: CoordinatorConfig,
  ) {
    this.key = eventStreamKey(config.queuePrefix);
  }

  async onApplicationBootstrap(): Promise<void> {
    try {
      await this.redis.xgroup('CREATE', this.key, GROUP, '0', 'MKSTREAM');
    } catch (error) {
      if (!String(error).includes('BUSYGROUP')) throw error;
    }
    // A blocking XREADGROUP holds its connection; give it one of its own.
    this.reader = this.redis.duplicate();
    this.loop = this.run();
  }

  async onApplicationShutdown(): Promise<void> {
    this.stopped = true;
    this.reader?.disconnect();
    await this.loop;
  }

  private async run(): Promise<void> {
    let lastClaim = 0;
    // After PostgreSQL was unreachable, this consumer's unacknowledged entries are read again
    // (ID 0) as soon as it answers, instead of waiting CLAIM_IDLE_MS for the claim.
    let rereadPending = false;
    while (!this.stopped) {
      try {
        if (Date.now() - lastClaim > CLAIM_IDLE_MS) {
          lastClaim = Date.now();
          const [, claimed] = (await this.redis.xautoclaim(this.key, GROUP, this.consumer, CLAIM_IDLE_MS, '0')) as [
            string,
            StreamEntries,
          ];
          await this.handle(claimed);
        }
        if (rereadPending) {
          const pending = (await this.redis.xreadgroup(
            'GROUP',
            GROUP,
            this.consumer,
            'COUNT',
            100,
            'STREAMS',
            this.key,
            '0',
          )) as [string, StreamEntries][] | null;
          const entries = pending?.[0]?.[1] ?? [];
          await this.handle(entries);
          rereadPending = entries.length > 0;
          if (rereadPending) continue;
        }
        const reply = (await this.reader!.xreadgroup(
          'GROUP',
          GROUP,
          this.consumer,
          'COUNT',
          100,
          'BLOCK',
          BLOCK_MS,
          'STREAMS',
          this.key,
          '>',
        )) as [string, StreamEntries][] | null;
        if (reply) await this.handle(reply[0][1]);
      } catch (error) {
        if (this.stopped) return;
        if (isDatabaseUnavailable(error)) rereadPending = true;
        this.logger.error(`agent events: ${(error as Error).message}`);
        await new Promise((resolve) => setTimeout(resolve, 1_000));
      }
    }
  }

  /**
   * Applies a batch: the events of one build in stream order (a platform's start before its end),
   * different builds side by side, so one slow build or a burst of events does not hold the rest
   * back. What was applied is acknowledged (and deleted: the stream stays short) in one round
   * trip; an event that failed, and the later ones of its build, stay pending and are read again.
   */
  private async handle(entries: StreamEntries): Promise<void> {
    if (entries.length === 0) return;
    const byBuild = new Map<string, { id: string; event?: FarmEvent }[]>();
    for (const [id, fields] of entries) {
      // A pending entry deleted meanwhile comes back without fields.
      const event = Array.isArray(fields) ? decodeAgentEvent(fields) : undefined;
      const key = event?.buildId ?? id;
      const events = byBuild.get(key) ?? [];
      events.push({ id, event });
      byBuild.set(key, events);
    }
    const applied: string[] = [];
    const outcomes = await Promise.allSettled(
      [...byBuild.values()].map(async (events) => {
        for (const { id, event } of events) {
          if (event) await this.apply(event);
          else this.logger.warn(`ignoring unknown agent event ${id}`);
          applied.push(id);
        }
      }),
    );
    if (applied.length > 0) {
      // Sent back to back on one connection: one round trip.
      await Promise.all([this.redis.xack(this.key, GROUP, ...applied), this.redis.xdel(this.key, ...applied)]);
    }
    const failure = outcomes.find((outcome): outcome is PromiseRejectedResult => outcome.status === 'rejected');
    if (failure) throw failure.reason;
  }

  private async apply(event: FarmEvent): Promise<void> {
    if (event.type === 'build.accepted') {
      this.statuses.accepted(event.buildId);
      return;
    }
    if (event.type === 'build.canceled') {
      this.statuses.canceled(event.buildId, event.platforms);
      return;
    }
    const at = new Date(event.at);
    // Events of a job of an earlier run (still running while the build was retried) change nothing.
    const retry = event.retry ?? 0;
    if (event.type === 'platform.started') {
      const started = await this.builds.platformStarted(
        event.buildId,
        event.platform,
        { agent: event.agent, emulated: event.emulated, attempt: event.attempt, at },
        retry,
      );
      if (started) this.statuses.platformStarted(event.buildId, event.platform, event.agent, event.emulated);
      return;
    }
    // Noted while the end is recorded: the two write different columns of the row.
    const attemptNoted = this.builds.noteAttempt(event.buildId, event.platform, event.attempt, retry);
    // Attempts BullMQ will retry are not an end; the platform stays running.
    if (!event.final) return attemptNoted;
    await Promise.all([attemptNoted, this.recordEnd(event, at, retry)]);
  }

  private async recordEnd(event: PlatformEndedEvent, at: Date, retry: number): Promise<void> {
    if (event.status === 'canceled') {
      // The api marked the platform canceled already (and told the forge); keep its log.
      await this.outcomes.archiveCanceled(event.buildId, event.platform);
      return;
    }
    // Recorded right away so the API shows each platform's end while the others still build;
    // the publish job records the same outcome again from BullMQ, which is authoritative.
    const result = event.status === 'succeeded' ? event.result : undefined;
    const recorded = await this.outcomes.record(
      event.buildId,
      event.platform,
      {
        status: event.status,
        agent: event.agent,
        emulated: event.emulated,
        digest: result?.digest,
        mediaType: result?.mediaType,
        size: result?.size,
        startedAt: result ? new Date(result.startedAt) : undefined,
        error: event.status === 'failed' ? (event.error ?? 'failed') : undefined,
        finishedAt: at,
      },
      retry,
    );
    if (recorded) {
      this.statuses.platformEnded(event.buildId, event.platform, event.status === 'succeeded', event.error);
    }
  }
}
