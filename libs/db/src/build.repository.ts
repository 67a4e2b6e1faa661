import { Injectable } from '@nestjs/common';
import { Prisma, type Build, type PlatformBuild, type BuildStatus, type PlatformStatus } from './generated/client';
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
}
export type BuildWithPlatforms = Build & { platforms: PlatformBuild[] };

export interface NewBuild {
  id: string;
  repo: string;
  ref: string | null;
  commit: string;
  dockerfile: string;
  context: string;
  target: string | null;
  tags: string[];
  buildArgs: Record<string, string>;
  labels: Record<string, string>;
  platforms: string[];
  idempotencyKey?: string;
  projectId?: string;
  requires?: string[];
  scheduleTimeout?: number | null;
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
const WAITING: PlatformStatus[] = ['queued', 'unschedulable'];

/** Builds and their platforms. State changes are guarded in SQL so replays and races are harmless. */
@Injectable()
export class BuildRepository {
  constructor(private readonly prisma: PrismaService) {}

  /** Two INSERT ... RETURNING statements, no read back: webhooks answer within milliseconds. */
  async create(build: NewBuild, db: Db = this.prisma): Promise<BuildWithPlatforms> {
    const { platforms, ...fields } = build;
    const created = await db.build.create({ data: fields });
    const rows = await db.platformBuild.createManyAndReturn({
      data: platforms.map((platform, position) => ({ buildId: build.id, platform, position })),
    });
    return { ...created, platforms: rows.sort((a, b) => a.position - b.position) };
  }

  async delete(id: string): Promise<void> {
    await this.prisma.build.deleteMany({ where: { id } });
  }

  async markEnqueued(id: string): Promise<void> {
    await this.prisma.build.update({ where: { id }, data: { enqueuedAt: new Date() } });
  }

  async find(id: string): Promise<BuildWithPlatforms | null> {
    return this.prisma.build.findUnique({ where: { id }, include: withPlatforms });
  }

  /** The build without its platforms' archived logs (up to 1 MiB each): for frequent polling. */
  async findWithoutLogs(id: string): Promise<BuildWithPlatforms | null> {
    const build = await this.prisma.build.findUnique({
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

  /** An agent began an attempt: the platform (and the build, if still queued) is running. */
  async platformStarted(
    buildId: string,
    platform: string,
    started: { agent: string; emulated: boolean; attempt: number; at: Date },
  ): Promise<void> {
    await this.prisma.$transaction([
      this.prisma.platformBuild.updateMany({
        where: { buildId, platform, status: { in: [...WAITING, 'running'] } },
        data: {
          status: 'running',
          agent: started.agent,
          emulated: started.emulated,
          attempts: started.attempt,
          startedAt: started.at,
          error: null,
          statusReason: null,
        },
      }),
      this.prisma.build.updateMany({
        where: { id: buildId, status: 'queued' },
        data: { status: 'running', startedAt: started.at },
      }),
    ]);
  }

  /** A platform ended for good. Never overwrites an already ended platform. */
  async platformEnded(buildId: string, platform: string, outcome: PlatformOutcome): Promise<void> {
    await this.prisma.platformBuild.updateMany({
      where: { buildId, platform, status: { notIn: ENDED } },
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
      SELECT pb."buildId"::text AS "buildId", pb."platform", b."requires", b."scheduleTimeout"
      FROM "PlatformBuild" pb JOIN "Build" b ON b."id" = pb."buildId"
      WHERE pb."status" IN ('queued', 'unschedulable') AND b."scheduleTimeout" IS NOT NULL
        AND b."createdAt" + make_interval(secs => b."scheduleTimeout") < now()`;
    return rows.map((row) => ({ ...row, requires: row.requires ?? [] }));
  }

  /** Attempts only grow: events and the publish job may report them in any order. */
  async noteAttempt(buildId: string, platform: string, attempt: number): Promise<void> {
    await this.prisma.platformBuild.updateMany({
      where: { buildId, platform, attempts: { lt: attempt } },
      data: { attempts: attempt },
    });
  }

  /** The build ended: published (digest), failed or canceled. */
  async finish(
    id: string,
    outcome: { status: BuildStatus; digest?: string; mediaType?: string; error?: string },
  ): Promise<void> {
    const now = new Date();
    await this.prisma.build.updateMany({
      where: { id, status: { notIn: ENDED } },
      data: { ...outcome, finishedAt: now },
    });
    // A build that failed before any agent picked it up still gets a start time.
    await this.prisma.build.updateMany({ where: { id, startedAt: null }, data: { startedAt: now } });
  }

  /** Liveness of the connection, for /readyz. */
  async ping(): Promise<void> {
    await this.prisma.$queryRaw`SELECT 1`;
  }
}
