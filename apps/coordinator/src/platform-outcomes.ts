import { Inject, Injectable } from '@nestjs/common';
import type { Redis } from 'ioredis';
import type { CoordinatorConfig } from '@farm/config';
import { BuildRepository, type PlatformOutcome } from '@farm/db';
import { readLogText } from '@farm/queue';
import { COORDINATOR_CONFIG, REDIS } from './tokens';

/** Lines of the log kept with a platform's error. */
const LOG_TAIL_LINES = 30;
/** The archived log is capped; the head is dropped, since the end shows what failed. */
export const LOG_ARCHIVE_LIMIT = 1024 * 1024;

/**
 * Records how a platform ended, together with its log (archived from the Redis stream into
 * PostgreSQL) and the log's tail. Called from agent events and again from the publish job;
 * the repository never overwrites an ended platform, so the second call is harmless.
 */
@Injectable()
export class PlatformOutcomes {
  constructor(
    private readonly builds: BuildRepository,
    @Inject(REDIS) private readonly redis: Redis,
    @Inject(COORDINATOR_CONFIG) private readonly config: CoordinatorConfig,
  ) {}

  /**
   * Records the outcome unless the platform already ended or (with `retry`) the build moved on
   * to a later run; resolves with whether it did.
   */
  async record(
    buildId: string,
    platform: string,
    outcome: Omit<PlatformOutcome, 'log' | 'logTail'>,
    retry?: number,
  ): Promise<boolean> {
    const { log, logTail } = await this.archive(buildId, platform);
    return this.builds.platformEnded(buildId, platform, { ...outcome, log, logTail }, retry);
  }

  /** Keeps the log of a platform canceled while it ran (the cancel itself stored none). */
  async archiveCanceled(buildId: string, platform: string): Promise<void> {
    const { log, logTail } = await this.archive(buildId, platform);
    if (log) await this.builds.archiveCanceledLog(buildId, platform, log, logTail);
  }

  private async archive(buildId: string, platform: string): Promise<{ log: string; logTail?: string }> {
    let log = await readLogText(this.redis, this.config.queuePrefix, buildId, platform);
    if (log.length > LOG_ARCHIVE_LIMIT) {
      log = `[log truncated to its last ${LOG_ARCHIVE_LIMIT} bytes]\n${log.slice(-LOG_ARCHIVE_LIMIT)}`;
    }
    const logTail = log.trimEnd().split('\n').slice(-LOG_TAIL_LINES).join('\n');
    return { log, logTail: logTail || undefined };
  }
}
