import { Injectable } from '@nestjs/common';
import { PrismaService } from './prisma.service';

/** How many observations of one label set fell into one bucket, and their sum. */
export interface BucketRow {
  labels: Record<string, string>;
  /** Index of the first upper bound the value does not exceed (`bounds.length`: only +Inf). */
  bucket: number;
  count: number;
  sum: number;
}

interface BucketSql {
  platform?: string;
  status?: string;
  bucket: number;
  count: number;
  sum: number;
}

function toRows(rows: BucketSql[], labelNames: ('platform' | 'status')[]): BucketRow[] {
  return rows.map((row) => ({
    labels: Object.fromEntries(labelNames.map((name) => [name, row[name] ?? ''])),
    bucket: row.bucket,
    count: row.count,
    sum: row.sum,
  }));
}

/**
 * Bounds for width_bucket(-value, ...), which counts the thresholds <= its operand: counting
 * `-le <= -value` counts the bounds with `value <= le`, so `bounds.length` minus it is the
 * index of the first bucket holding the value.
 */
function negated(bounds: readonly number[]): number[] {
  return bounds.map((le) => -le).sort((a, b) => a - b);
}

/**
 * What /metrics reads from PostgreSQL at scrape time: counts grouped in the database, and the
 * histograms' per-bucket counts aggregated in SQL, so a scrape moves a few rows whatever the
 * number of builds. Every api replica reports the same farm-wide numbers.
 *
 * A bucket index is the number of upper bounds below the value, i.e. the first bound with
 * `value <= le`, as Prometheus counts (computed with width_bucket, see negated()).
 */
@Injectable()
export class MetricsRepository {
  constructor(private readonly prisma: PrismaService) {}

  async buildsByStatus(): Promise<{ status: string; count: number }[]> {
    const rows = await this.prisma.build.groupBy({ by: ['status'], _count: { _all: true } });
    return rows.map((row) => ({ status: row.status, count: row._count._all }));
  }

  async platformBuildsByStatus(): Promise<{ platform: string; status: string; count: number }[]> {
    const rows = await this.prisma.platformBuild.groupBy({ by: ['platform', 'status'], _count: { _all: true } });
    return rows.map((row) => ({ platform: row.platform, status: row.status, count: row._count._all }));
  }

  /** Deliveries by outcome; those refused for their signature are only counted per project. */
  async deliveriesByOutcome(): Promise<{ outcome: string; count: number }[]> {
    const [rows, rejected] = await Promise.all([
      this.prisma.delivery.groupBy({ by: ['outcome'], _count: { _all: true } }),
      this.prisma.project.aggregate({ _sum: { rejectedDeliveries: true } }),
    ]);
    return [
      ...rows.map((row) => ({ outcome: row.outcome, count: row._count._all })),
      { outcome: 'rejected', count: rejected._sum.rejectedDeliveries ?? 0 },
    ];
  }

  /** Platforms (and required labels) of builds not yet ended: the queues they wait in. */
  async unfinishedPlatforms(): Promise<{ platform: string; requires: string[] }[]> {
    return this.prisma.$queryRaw<{ platform: string; requires: string[] }[]>`
      SELECT DISTINCT p.platform, b.requires
      FROM "PlatformBuild" p JOIN "Build" b ON b.id = p."buildId"
      WHERE p.status IN ('queued', 'unschedulable', 'running')`;
  }

  /** Platform builds that ended: from an agent taking the job to the platform's end. */
  async buildDurations(bounds: readonly number[]): Promise<BucketRow[]> {
    const rows = await this.prisma.$queryRaw<BucketSql[]>`
      SELECT d.platform, d.status::text AS status,
             ${bounds.length}::int - width_bucket(-d.seconds, ${negated(bounds)}::float8[]) AS bucket,
             count(*)::int AS count, sum(d.seconds) AS sum
      FROM (
        SELECT platform, status, GREATEST(date_part('epoch', "finishedAt" - "startedAt"), 0) AS seconds
        FROM "PlatformBuild"
        WHERE status IN ('succeeded', 'failed', 'canceled') AND "startedAt" IS NOT NULL AND "finishedAt" IS NOT NULL
      ) d
      GROUP BY 1, 2, 3`;
    return toRows(rows, ['platform', 'status']);
  }

  /** From the build request to an agent taking the platform (its last attempt). */
  async queueWaits(bounds: readonly number[]): Promise<BucketRow[]> {
    const rows = await this.prisma.$queryRaw<BucketSql[]>`
      SELECT d.platform,
             ${bounds.length}::int - width_bucket(-d.seconds, ${negated(bounds)}::float8[]) AS bucket,
             count(*)::int AS count, sum(d.seconds) AS sum
      FROM (
        SELECT p.platform, GREATEST(date_part('epoch', p."startedAt" - b."createdAt"), 0) AS seconds
        FROM "PlatformBuild" p JOIN "Build" b ON b.id = p."buildId"
        WHERE p."startedAt" IS NOT NULL
      ) d
      GROUP BY 1, 2`;
    return toRows(rows, ['platform']);
  }

  /** Succeeded builds: from the last platform's end to the index being published under every tag. */
  async publishLatencies(bounds: readonly number[]): Promise<BucketRow[]> {
    const rows = await this.prisma.$queryRaw<BucketSql[]>`
      SELECT ${bounds.length}::int - width_bucket(-d.seconds, ${negated(bounds)}::float8[]) AS bucket,
             count(*)::int AS count, sum(d.seconds) AS sum
      FROM (
        SELECT GREATEST(date_part('epoch', b."finishedAt" - max(p."finishedAt")), 0) AS seconds
        FROM "Build" b JOIN "PlatformBuild" p ON p."buildId" = b.id
        WHERE b.status = 'succeeded' AND b."finishedAt" IS NOT NULL
        GROUP BY b.id
        HAVING max(p."finishedAt") IS NOT NULL
      ) d
      GROUP BY 1`;
    return toRows(rows, []);
  }
}
