import { statfs } from 'node:fs/promises';
import type { PlatformBuildJob } from '@farm/queue';
import type { Builder, BuildContext, BuiltImage, CachePruneStep } from './builder';

/** FARM_CACHE_PRUNE_HIGH_PERCENT / FARM_CACHE_PRUNE_LOW_PERCENT. */
export interface PruneThresholds {
  /** Pruning starts when the disk is more than this much used. */
  highPercent: number;
  /** ... and stops once it is below this. */
  lowPercent: number;
}

export interface DiskUsage {
  /** As `df` counts it: used / (used + available), so blocks reserved for root count as neither. */
  usedPercent: number;
  /** What `df` shows as available. */
  availableBytes: number;
}

export interface PruneReport {
  before: DiskUsage;
  after: DiskUsage;
  /** Each step taken, in order, with the space the filesystem got back. */
  removed: { what: string; freedBytes: number }[];
}

/** The usage of a filesystem from its statfs. */
export function diskUsageOf(stats: { bsize: number; blocks: number; bfree: number; bavail: number }): DiskUsage {
  const used = stats.blocks - stats.bfree;
  const counted = used + stats.bavail;
  return { usedPercent: counted > 0 ? (used * 100) / counted : 0, availableBytes: stats.bavail * stats.bsize };
}

/** The usage of the filesystem holding `path`. */
export async function diskUsage(path: string): Promise<DiskUsage> {
  return diskUsageOf(await statfs(path));
}

/**
 * Kubelet's image GC, for an agent's caches: when the disk is more than `highPercent` used, takes
 * the steps in their order (cheapest loss first) until it is below `lowPercent` or none is left.
 * A step that fails is logged and skipped: the next one may still free the disk. Undefined when
 * the disk had room. What a step freed is what the filesystem got back (statfs before and after,
 * no walk over the caches), so other writers to the same disk blur it.
 */
export async function pruneWhileFull(
  steps: AsyncIterable<CachePruneStep>,
  options: { thresholds: PruneThresholds; usage: () => Promise<DiskUsage>; log: (message: string) => void },
): Promise<PruneReport | undefined> {
  const { thresholds, usage, log } = options;
  const before = await usage();
  if (before.usedPercent <= thresholds.highPercent) return undefined;
  const started = Date.now();
  log(
    `cache prune: the disk is ${percent(before)} used, more than ${thresholds.highPercent}%: ` +
      `pruning caches until it is below ${thresholds.lowPercent}%`,
  );
  let now = before;
  const removed: PruneReport['removed'] = [];
  for await (const step of steps) {
    if (now.usedPercent < thresholds.lowPercent) break;
    try {
      await step.remove();
    } catch (error) {
      log(`cache prune: could not remove ${step.what}: ${(error as Error).message}`);
      continue;
    }
    const after = await usage();
    const freedBytes = Math.max(0, after.availableBytes - now.availableBytes);
    removed.push({ what: step.what, freedBytes });
    log(`cache prune: removed ${step.what}: ${formatBytes(freedBytes)} freed, the disk is ${percent(after)} used`);
    now = after;
  }
  const freed = formatBytes(Math.max(0, now.availableBytes - before.availableBytes));
  const seconds = ((Date.now() - started) / 1000).toFixed(1);
  const outcome = now.usedPercent < thresholds.lowPercent ? '' : ', nothing more to prune';
  log(
    `cache prune: ${removed.length} removed, ${freed} freed in ${seconds} s; the disk is ${percent(now)} used${outcome}`,
  );
  return { before, after: now, removed };
}

/**
 * Wraps the agent's builder with the disk thresholds: `pruneCaches`, which the agent calls after
 * a job while no other job runs, prunes what the wrapped builder's `cachePruneSteps` offers when
 * the disk holding `dir` is too full. A builder without steps is never pruned.
 */
export class CachePruningBuilder implements Builder {
  readonly platform: Builder['platform'];
  readonly emulated: boolean;
  readonly removeLeftovers?: () => Promise<void>;

  constructor(
    private readonly inner: Builder,
    private readonly options: PruneThresholds & {
      /** A dir on the filesystem the caches are on: the agent's state dir. */
      dir: string;
      log: (message: string) => void;
    },
  ) {
    this.platform = inner.platform;
    this.emulated = inner.emulated;
    if (inner.removeLeftovers) this.removeLeftovers = () => inner.removeLeftovers!();
  }

  setup(job: PlatformBuildJob, context: BuildContext): Promise<void> {
    return this.inner.setup(job, context);
  }

  run(job: PlatformBuildJob, context: BuildContext): Promise<BuiltImage> {
    return this.inner.run(job, context);
  }

  destroy(job: PlatformBuildJob): Promise<void> {
    return this.inner.destroy(job);
  }

  async pruneCaches(): Promise<void> {
    await this.prune();
  }

  /** What pruneCaches does, with what it removed; undefined when the disk had room or nothing offers steps. */
  async prune(): Promise<PruneReport | undefined> {
    if (!this.inner.cachePruneSteps) return undefined;
    const { dir, log, highPercent, lowPercent } = this.options;
    return pruneWhileFull(this.inner.cachePruneSteps(), {
      thresholds: { highPercent, lowPercent },
      usage: () => diskUsage(dir),
      log,
    });
  }
}

function percent(usage: DiskUsage): string {
  return `${usage.usedPercent.toFixed(1)}%`;
}

/** "812 B", "3.4 MB", "12.0 GB". */
export function formatBytes(bytes: number): string {
  if (bytes < 1000) return `${bytes} B`;
  if (bytes < 1_000_000) return `${(bytes / 1000).toFixed(1)} kB`;
  if (bytes < 1_000_000_000) return `${(bytes / 1_000_000).toFixed(1)} MB`;
  return `${(bytes / 1_000_000_000).toFixed(1)} GB`;
}
