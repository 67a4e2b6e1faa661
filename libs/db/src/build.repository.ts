import { Injectable } from '@nestjs/common';
import { Prisma, type Build, type PlatformBuild, type BuildStatus, type PlatformStatus } from './generated/client';
import { isUniqueViolation } from './errors';
import { PrismaService } from './prisma.service';

export type { Build, PlatformBuild, BuildStatus, PlatformStatus };

/** Platforms no agent has taken yet, grouped by what they need from an agent. */
export interface WaitingGroup {
  platform: string;
  requires: string[];
  status: 'queued' | 'unschedulable';
  statusReason: string | null;
  count: number;
}

/** A waiting platform whose build's scheduleTimeout has passed. */
export interface OverduePlatform {
  buildId: string;
  platform: string;
  requires: string[];
  scheduleTimeout: number;
  /** The build's run (its job ids depend on it). */
  retries: number;
}

/** What a retry reruns: the new run's number and the platforms that had not succeeded. */
export interface RetriedRun {
  retry: number;
  platforms: string[];
}
export type BuildWithPlatforms = Build & { platforms: PlatformBuild[] };
/** A build the coordinator claimed for publishing: what the index needs, no archived logs. */
export interface PublishClaim {
  id: string;
  repo: string;
  commit: string;
  contextDigest: string | null;
  tags: string[];
  requires: string[];
  /** In the order the build asked for them. */
  platforms: Pick<PlatformBuild, 'platform' | 'status' | 'digest' | 'mediaType' | 'size'>[];
}
/** A build with its platforms but not their archived logs (up to 1 MiB each). */
export type BuildSummary = Build & { platforms: Omit<PlatformBuild, 'log'>[] };

export interface NewBuild {
  id: string;
  repo: string;
  ref: string | null;
  commit: string;
  dockerfile: string;
  context: string;
  /** The uploaded context archive built instead of a commit (repo and commit are then empty). */
  contextDigest?: string | null;
  target: string | null;
  tags: string[];
  buildArgs: Record<string, string>;
  /** Build secrets sealed with FARM_SECRETS_KEY (libs/queue sealed-secrets.ts), never in clear. */
  secrets?: string | null;
  labels: Record<string, string>;
  platforms: string[];
  /** Idempotency-Key and the hash of the request sent with it (see createOnce). */
  idempotencyKey?: string;
  idempotencyHash?: string;
  projectId?: string;
  requires?: string[];
  scheduleTimeout?: number | null;
  noCache?: boolean;
  /** Set at creation when the flow is added in the same transaction. */
  enqueuedAt?: Date;
}

/** The client or an interactive transaction's client: repositories work with both. */
export type Db = PrismaService | Prisma.TransactionClient;

export interface BuildFilter {
  status?: BuildStatus;
  repo?: string;
  /** id of the last build of the previous page */
  cursor?: string;
  limit: number;
}

export interface PlatformOutcome {
  status: 'succeeded' | 'failed' | 'canceled';
  digest?: string;
  mediaType?: string;
  size?: number;
  agent?: string;
  emulated?: boolean;
  error?: string;
  logTail?: string;
  log?: string;
  startedAt?: Date;
  finishedAt: Date;
}

const withPlatforms = { platforms: { orderBy: { position: 'asc' } } } satisfies Prisma.BuildInclude;
const ENDED: BuildStatus[] = ['succeeded', 'failed', 'canceled'];
/**
 * How long an idempotency key stays bound to the build it created; after that the key may name
 * a new build (the api releases it when it is used again, the coordinator's reconciler sweeps).
 */
export const IDEMPOTENCY_KEY_TTL_MS = 24 * 60 * 60 * 1000;
/** Where a walk through the unfinished builds goes on: after this build. */
export interface UnfinishedCursor {
  createdAt: Date;
  id: string;
}

/** A platform row before any agent took it: at first, and again when a retry rebuilds it. */
const QUEUED_PLATFORM = {
  status: 'queued',
  statusReason: null,
  digest: null,
  mediaType: null,
  size: null,
  agent: null,
  emulated: false,
  attempts: 0,
  error: null,
  logTail: null,
  log: null,
  startedAt: null,
  finishedAt: null,
} satisfies Omit<PlatformBuild, 'buildId' | 'platform' | 'position'>;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** Builds and their platforms. State changes are guarded in SQL so replays and races are harmless. */
@Injectable()
export class BuildRepository {
  constructor(private readonly prisma: PrismaService) {}

  /**
   * The build and its platform rows in one INSERT statement (one round trip, no read back):
   * webhooks answer within milliseconds and the api takes hundreds of builds a second. Every
   * column is written, none left to a default, so the rows returned are exactly those stored.
   */
  async create(build: NewBuild, db: Db = this.prisma): Promise<BuildWithPlatforms> {
    const row: Build = {
      id: build.id,
      status: 'queued',
      repo: build.repo,
      ref: build.ref,
      commit: build.commit,
      dockerfile: build.dockerfile,
      context: build.context,
      contextDigest: build.contextDigest ?? null,
      target: build.target,
      tags: build.tags,
      buildArgs: build.buildArgs,
      secrets: build.secrets ?? null,
      labels: build.labels,
      noCache: build.noCache ?? false,
      digest: null,
      mediaType: null,
      error: null,
      idempotencyKey: build.idempotencyKey ?? null,
      idempotencyHash: build.idempotencyHash ?? null,
      createdAt: new Date(),
      startedAt: null,
      finishedAt: null,
      enqueuedAt: build.enqueuedAt ?? null,
      projectId: build.projectId ?? null,
      requires: build.requires ?? [],
      scheduleTimeout: build.scheduleTimeout ?? null,
      retries: 0,
      retriedAt: null,
      publishingAt: null,
    };
    const platforms: PlatformBuild[] = build.platforms.map((platform, position) => ({
      buildId: build.id,
      platform,
      position,
      ...QUEUED_PLATFORM,
    }));
    // The platform rows' foreign key is checked at the end of the statement, when the build row exists.
    await db.$executeRaw`
      WITH "build" AS (
        INSERT INTO "Build" ("id", "status", "repo", "ref", "commit", "dockerfile", "context", "contextDigest",
          "target", "tags", "buildArgs", "secrets", "labels", "noCache", "idempotencyKey", "idempotencyHash",
          "createdAt", "enqueuedAt", "projectId", "requires", "scheduleTimeout", "retries")
        VALUES (${row.id}::uuid, ${row.status}::"BuildStatus", ${row.repo}, ${row.ref}, ${row.commit},
          ${row.dockerfile}, ${row.context}, ${row.contextDigest}, ${row.target}, ${row.tags}::text[],
          ${JSON.stringify(row.buildArgs)}::jsonb, ${row.secrets}, ${JSON.stringify(row.labels)}::jsonb,
          ${row.noCache}, ${row.idempotencyKey}, ${row.idempotencyHash}, ${row.createdAt}::timestamptz,
          ${row.enqueuedAt}::timestamptz, ${row.projectId}::uuid, ${row.requires}::text[],
          ${row.scheduleTimeout}::int, ${row.retries}::int)
      )
      INSERT INTO "PlatformBuild" ("buildId", "platform", "position", "status", "emulated", "attempts")
      SELECT ${row.id}::uuid, p."platform", (p."position" - 1)::int, 'queued', false, 0
      FROM unnest(${build.platforms}::text[]) WITH ORDINALITY AS p("platform", "position")`;
    return { ...row, platforms };
  }

  async delete(id: string): Promise<void> {
    await this.prisma.build.deleteMany({ where: { id } });
  }

  /** The build's flow exists. A no-op for a build deleted meanwhile (its enqueue failed). */
  async markEnqueued(id: string): Promise<void> {
    await this.prisma.build.updateMany({ where: { id }, data: { enqueuedAt: new Date() } });
  }

  /**
   * Creates a build and runs `enqueue` before the transaction commits: the row is never seen
   * without its flow, and a failed enqueue leaves nothing stored. One commit instead of an
   * insert, then an update once the flow exists.
   */
  async createQueued(build: NewBuild, enqueue: () => Promise<void>): Promise<BuildWithPlatforms> {
    return this.prisma.$transaction(async (tx) => {
      const created = await this.create({ ...build, enqueuedAt: new Date() }, tx);
      await enqueue();
      return created;
    });
  }

  /**
   * Creates a build that carries an idempotency key, once: the row is inserted inside a
   * transaction that then runs `enqueue`, so a concurrent insert of the same key waits on the
   * unique index until this transaction ends, then fails and finds the committed build (which
   * is complete and queued by then). No check-then-insert. Returns undefined when the key was
   * taken (the caller looks the holder up with findByIdempotencyKey).
   */
  async createOnce(
    build: NewBuild & { idempotencyKey: string; idempotencyHash: string },
    enqueue: () => Promise<void>,
  ): Promise<BuildWithPlatforms | undefined> {
    try {
      return await this.createQueued(build, enqueue);
    } catch (error) {
      if (isUniqueViolation(error)) return undefined;
      throw error;
    }
  }

  /**
   * The build created under this idempotency key, if the key is still live. A key older than
   * `expiredBefore` is released instead, so a new request may use it.
   */
  async findByIdempotencyKey(key: string, expiredBefore: Date): Promise<BuildWithPlatforms | null> {
    const build = await this.prisma.build.findUnique({ where: { idempotencyKey: key }, include: withPlatforms });
    if (!build || build.createdAt >= expiredBefore) return build;
    await this.releaseIdempotencyKeys(expiredBefore, key);
    return null;
  }

  /** Forgets idempotency keys used before `expiredBefore` (all of them, or just `key`). */
  async releaseIdempotencyKeys(expiredBefore: Date, key?: string): Promise<number> {
    const { count } = await this.prisma.build.updateMany({
      where: { idempotencyKey: key ?? { not: null }, createdAt: { lt: expiredBefore } },
      data: { idempotencyKey: null, idempotencyHash: null },
    });
    return count;
  }

  /** Builds accepted before `before` whose flow was never confirmed added (e.g. the api crashed). */
  async unenqueued(before: Date, limit: number): Promise<BuildSummary[]> {
    return this.prisma.build.findMany({
      where: { enqueuedAt: null, status: 'queued', createdAt: { lt: before } },
      include: { platforms: { orderBy: { position: 'asc' }, omit: { log: true } } },
      orderBy: { createdAt: 'asc' },
      take: limit,
    });
  }

  /**
   * Enqueued builds, accepted before `before`, that have not ended: oldest first, a page of
   * `limit` after the build `after` (the last of the previous page), so that a walk through a
   * deep queue reaches every build, not only the oldest ones.
   */
  async unfinished(before: Date, limit: number, after?: UnfinishedCursor): Promise<BuildSummary[]> {
    const later = after && {
      OR: [{ createdAt: { gt: after.createdAt } }, { createdAt: after.createdAt, id: { gt: after.id } }],
    };
    return this.prisma.build.findMany({
      where: { enqueuedAt: { not: null }, status: { notIn: ENDED }, createdAt: { lt: before }, ...later },
      include: { platforms: { orderBy: { position: 'asc' }, omit: { log: true } } },
      orderBy: [{ createdAt: 'asc' }, { id: 'asc' }],
      take: limit,
    });
  }

  /** Which of these ids have a build row. */
  async existingIds(ids: string[]): Promise<Set<string>> {
    const uuids = ids.filter((id) => UUID.test(id));
    if (uuids.length === 0) return new Set();
    const rows = await this.prisma.build.findMany({ where: { id: { in: uuids } }, select: { id: true } });
    return new Set(rows.map((row) => row.id));
  }

  async find(id: string): Promise<BuildWithPlatforms | null> {
    return this.prisma.build.findUnique({ where: { id }, include: withPlatforms });
  }

  /** The build without its platforms' archived logs (up to 1 MiB each): for frequent polling. */
  async findWithoutLogs(id: string, db: Db = this.prisma): Promise<BuildWithPlatforms | null> {
    const build = await db.build.findUnique({
      where: { id },
      include: { platforms: { orderBy: { position: 'asc' }, omit: { log: true } } },
    });
    return build && { ...build, platforms: build.platforms.map((p) => ({ ...p, log: null })) };
  }

  /** Newest first; keyset paging on (createdAt, id) so pages stay stable while builds arrive. */
  async list(filter: BuildFilter): Promise<BuildWithPlatforms[]> {
    const where: Prisma.BuildWhereInput = { status: filter.status, repo: filter.repo };
    if (filter.cursor) {
      const last = await this.prisma.build.findUnique({ where: { id: filter.cursor }, select: { createdAt: true } });
      if (last) {
        where.OR = [{ createdAt: { lt: last.createdAt } }, { createdAt: last.createdAt, id: { lt: filter.cursor } }];
      }
    }
    return this.prisma.build.findMany({
      where,
      include: withPlatforms,
      orderBy: [{ createdAt: 'desc' }, { id: 'desc' }],
      take: filter.limit,
    });
  }

  /**
   * An agent began an attempt: the platform (and the build, if still queued) is running.
   * With `retry`, only while the build is in that run (a job of an earlier run changes nothing).
   * Resolves with whether the platform changed.
   */
  async platformStarted(
    buildId: string,
    platform: string,
    started: { agent: string; emulated: boolean; attempt: number; at: Date },
    retry?: number,
  ): Promise<boolean> {
    // One statement (both updates commit together): this is on every platform's way to running.
    // Without `retry` any run matches.
    const [{ count }] = await this.prisma.$queryRaw<{ count: bigint }[]>`
      WITH "platform" AS (
        UPDATE "PlatformBuild" pb
        SET "status" = 'running', "agent" = ${started.agent}, "emulated" = ${started.emulated},
          "attempts" = ${started.attempt}::int, "startedAt" = ${started.at}::timestamptz, "error" = NULL,
          "statusReason" = NULL
        FROM "Build" b
        WHERE b."id" = pb."buildId" AND pb."buildId" = ${buildId}::uuid AND pb."platform" = ${platform}
          AND pb."status" IN ('queued', 'unschedulable', 'running')
          AND (${retry ?? null}::int IS NULL OR b."retries" = ${retry ?? null}::int)
        RETURNING 1
      ), "build" AS (
        UPDATE "Build" SET "status" = 'running', "startedAt" = ${started.at}::timestamptz
        WHERE "id" = ${buildId}::uuid AND "status" = 'queued'
          AND (${retry ?? null}::int IS NULL OR "retries" = ${retry ?? null}::int)
      )
      SELECT count(*) AS "count" FROM "platform"`;
    return Number(count) > 0;
  }

  /**
   * A platform ended for good. Never overwrites an already ended platform, nor (with `retry`)
   * one of a later run. Resolves with whether the platform changed.
   */
  async platformEnded(buildId: string, platform: string, outcome: PlatformOutcome, retry?: number): Promise<boolean> {
    const { count } = await this.prisma.platformBuild.updateMany({
      where: {
        buildId,
        platform,
        status: { notIn: ENDED },
        build: retry === undefined ? undefined : { retries: retry },
      },
      data: {
        status: outcome.status,
        digest: outcome.digest,
        mediaType: outcome.mediaType,
        size: outcome.size,
        agent: outcome.agent,
        emulated: outcome.emulated,
        error: outcome.error ?? null,
        logTail: outcome.logTail,
        log: outcome.log,
        startedAt: outcome.startedAt,
        finishedAt: outcome.finishedAt,
      },
    });
    return count > 0;
  }

  /** The log of a platform canceled while it ran, which its agent flushed after the cancel. */
  async archiveCanceledLog(buildId: string, platform: string, log: string, logTail?: string): Promise<void> {
    await this.prisma.platformBuild.updateMany({
      where: { buildId, platform, status: 'canceled', log: null },
      data: { log, logTail },
    });
  }

  /**
   * Cancels a queued or running build of run `retry` and its platforms that have not ended,
   * unless the coordinator has begun publishing it. Resolves with the platforms it canceled,
   * or undefined when the build was not cancelable (any more).
   */
  async cancel(id: string, retry: number): Promise<string[] | undefined> {
    const now = new Date();
    return this.prisma.$transaction(async (tx) => {
      const { count } = await tx.build.updateMany({
        where: { id, retries: retry, status: { in: ['queued', 'running'] }, publishingAt: null },
        data: { status: 'canceled', finishedAt: now },
      });
      if (count === 0) return undefined;
      await tx.build.updateMany({ where: { id, startedAt: null }, data: { startedAt: now } });
      const platforms = await tx.platformBuild.findMany({
        where: { buildId: id, status: { notIn: ENDED } },
        select: { platform: true },
        orderBy: { position: 'asc' },
      });
      await tx.platformBuild.updateMany({
        where: { buildId: id, status: { notIn: ENDED } },
        data: { status: 'canceled', statusReason: null, finishedAt: now },
      });
      return platforms.map((p) => p.platform);
    });
  }

  /**
   * Starts the next run of a failed or canceled build that is in run `retry`: the build is
   * queued again and every platform that did not succeed is reset to queued; succeeded ones
   * keep their digests for the new index. `enqueue` adds the run's flow inside the
   * transaction, so a failure to enqueue leaves the build as it was. Resolves with the new run
   * and the build as it stands then (without archived logs: what the retry wrote, not what
   * agents did with the run right after), or undefined when the build was not retryable (any
   * more: a concurrent retry won).
   */
  async retry(
    id: string,
    retry: number,
    enqueue: (run: RetriedRun) => Promise<void>,
  ): Promise<(RetriedRun & { build: BuildWithPlatforms }) | undefined> {
    return this.prisma.$transaction(async (tx) => {
      const { count } = await tx.build.updateMany({
        where: { id, retries: retry, status: { in: ['failed', 'canceled'] } },
        data: {
          status: 'queued',
          retries: retry + 1,
          retriedAt: new Date(),
          digest: null,
          mediaType: null,
          error: null,
          finishedAt: null,
          publishingAt: null,
        },
      });
      if (count === 0) return undefined;
      const rerun = await tx.platformBuild.findMany({
        where: { buildId: id, status: { not: 'succeeded' } },
        select: { platform: true },
        orderBy: { position: 'asc' },
      });
      await tx.platformBuild.updateMany({
        where: { buildId: id, status: { not: 'succeeded' } },
        data: QUEUED_PLATFORM,
      });
      const run = { retry: retry + 1, platforms: rerun.map((p) => p.platform) };
      // Read before the flow exists: nothing but this transaction can have touched the run yet.
      const build = await this.findWithoutLogs(id, tx);
      if (!build) throw new Error(`build ${id} vanished inside the transaction that retried it`);
      await enqueue(run);
      return { ...run, build };
    });
  }

  /**
   * The coordinator begins publishing run `retry` of a build that has not ended: from now on a
   * cancel is refused. Resolves with what publishing needs of the build (one statement, no read
   * before it), or undefined when the build is gone, ended (canceled) or moved on to another run.
   */
  async claimPublish(id: string, retry: number): Promise<PublishClaim | undefined> {
    const rows = await this.prisma.$queryRaw<PublishClaim[]>`
      UPDATE "Build" b SET "publishingAt" = ${new Date()}::timestamptz
      WHERE b."id" = ${id}::uuid AND b."retries" = ${retry}::int
        AND b."status" NOT IN ('succeeded', 'failed', 'canceled')
      RETURNING b."id"::text AS "id", b."repo", b."commit", b."contextDigest", coalesce(b."tags", '{}') AS "tags",
        coalesce(b."requires", '{}') AS "requires",
        (SELECT coalesce(json_agg(json_build_object('platform', p."platform", 'status', p."status",
            'digest', p."digest", 'mediaType', p."mediaType", 'size', p."size") ORDER BY p."position"), '[]')
         FROM "PlatformBuild" p WHERE p."buildId" = b."id") AS "platforms"`;
    return rows[0];
  }

  /** The build's project, null without one, undefined when there is no such build. */
  async projectIdOf(id: string): Promise<string | null | undefined> {
    const build = await this.prisma.build.findUnique({ where: { id }, select: { projectId: true } });
    return build ? build.projectId : undefined;
  }

  /** A project's latest build of this ref at this commit that has not failed, if any. */
  async findActiveProjectBuild(projectId: string, ref: string, commit: string, db: Db = this.prisma) {
    return db.build.findFirst({
      where: { projectId, ref, commit, status: { notIn: ['failed', 'canceled'] } },
      orderBy: { createdAt: 'desc' },
      select: { id: true },
    });
  }

  /**
   * Waiting platforms grouped by (platform, required labels, status, reason): the scheduler
   * decides per group, so its cost does not grow with the number of queued builds.
   */
  async waitingGroups(): Promise<WaitingGroup[]> {
    const rows = await this.prisma.$queryRaw<(Omit<WaitingGroup, 'count'> & { count: bigint })[]>`
      SELECT pb."platform", coalesce(b."requires", '{}') AS "requires", pb."status"::text AS "status",
             pb."statusReason", count(*) AS "count"
      FROM "PlatformBuild" pb JOIN "Build" b ON b."id" = pb."buildId"
      WHERE pb."status" IN ('queued', 'unschedulable')
      GROUP BY pb."platform", coalesce(b."requires", '{}'), pb."status", pb."statusReason"`;
    return rows.map((row) => ({ ...row, requires: row.requires ?? [], count: Number(row.count) }));
  }

  /**
   * Moves a group between queued and unschedulable (with the reason); never touches a platform
   * an agent has taken meanwhile.
   */
  async setGroupScheduling(group: WaitingGroup, unschedulableReason: string | null): Promise<void> {
    const [status, reason] = unschedulableReason ? ['unschedulable', unschedulableReason] : ['queued', null];
    await this.prisma.$executeRaw`
      UPDATE "PlatformBuild" pb SET "status" = ${status}::"PlatformStatus", "statusReason" = ${reason}
      FROM "Build" b
      WHERE b."id" = pb."buildId" AND pb."platform" = ${group.platform}
        AND coalesce(b."requires", '{}') = ${group.requires}::text[]
        AND pb."status" IN ('queued', 'unschedulable')`;
  }

  /** Waiting platforms of builds whose scheduleTimeout (seconds since creation) has passed. */
  async overduePlatforms(): Promise<OverduePlatform[]> {
    const rows = await this.prisma.$queryRaw<OverduePlatform[]>`
      SELECT pb."buildId"::text AS "buildId", pb."platform", b."requires", b."scheduleTimeout", b."retries"
      FROM "PlatformBuild" pb JOIN "Build" b ON b."id" = pb."buildId"
      WHERE pb."status" IN ('queued', 'unschedulable') AND b."scheduleTimeout" IS NOT NULL
        AND coalesce(b."retriedAt", b."createdAt") + make_interval(secs => b."scheduleTimeout") < now()`;
    return rows.map((row) => ({ ...row, requires: row.requires ?? [] }));
  }

  /** Attempts only grow: events and the publish job may report them in any order. */
  async noteAttempt(buildId: string, platform: string, attempt: number, retry?: number): Promise<void> {
    await this.prisma.platformBuild.updateMany({
      where: {
        buildId,
        platform,
        attempts: { lt: attempt },
        build: retry === undefined ? undefined : { retries: retry },
      },
      data: { attempts: attempt },
    });
  }

  /** The build ended: published (digest), failed or canceled; with `retry`, only in that run. */
  async finish(
    id: string,
    outcome: { status: BuildStatus; digest?: string; mediaType?: string; error?: string },
    retry?: number,
  ): Promise<void> {
    const now = new Date();
    // One statement, on every build's critical path. A build that failed before any agent picked
    // it up still gets a start time. Fields left out of `outcome` keep their value.
    await this.prisma.$executeRaw`
      UPDATE "Build" SET "status" = ${outcome.status}::"BuildStatus", "finishedAt" = ${now}::timestamptz,
        "startedAt" = coalesce("startedAt", ${now}::timestamptz),
        "digest" = coalesce(${outcome.digest ?? null}, "digest"),
        "mediaType" = coalesce(${outcome.mediaType ?? null}, "mediaType"),
        "error" = coalesce(${outcome.error ?? null}, "error")
      WHERE "id" = ${id}::uuid AND "status" NOT IN ('succeeded', 'failed', 'canceled')
        AND (${retry ?? null}::int IS NULL OR "retries" = ${retry ?? null}::int)`;
  }

  /** Liveness of the connection, for /readyz. */
  async ping(): Promise<void> {
    await this.prisma.$queryRaw`SELECT 1`;
  }
}
