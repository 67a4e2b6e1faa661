import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, rename, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { RegistryClient } from '@farm/oci';
import type { PlatformBuildJob } from '@farm/queue';
import type { Builder, BuildContext, BuiltImage, CachePruneStep } from './builder';

/** What the agent remembers of an image it built: where it pushed it. */
interface Remembered extends BuiltImage {
  registry: string;
  repository: string;
}

/** Bump when what goes into an image changes for the same job (new buildah arguments, say). */
const RECIPE_VERSION = 'bud-layers-2-config-labels';

/**
 * When the disk fills, records no job used for this long go first: each is tiny (a 4 KiB block),
 * but there is one per distinct job, so they grow with the commits built; an old one most likely
 * names an image long gone from the registry or a commit never built again.
 */
export const STALE_RESULT_DAYS = 30;

/**
 * The agent's build-result cache, wrapping its builder: a job this agent already built, with
 * every input the same (repository, commit, Dockerfile, context, target, build args, labels and
 * whatever else the job carries, platform, emulation), gets the image it built then, without a
 * checkout or a `buildah bud`: the layer cache would have reused every step anyway and buildah
 * would only have committed the same layers again (measured at ~0.3 s per platform on the
 * bench). The image must still be in the registry: in the target repository already, or mounted
 * there from the repository it was pushed to (same registry); otherwise the job is built.
 *
 * Like the layer cache, it assumes that a base image tag does not move under the same job; the
 * same assumption `buildah bud --layers` makes with its default pull policy (missing).
 */
export class ResultCachingBuilder implements Builder {
  readonly platform: Builder['platform'];
  readonly emulated: boolean;
  readonly removeLeftovers?: () => Promise<void>;
  /** Jobs answered from the cache, between their setup and destroy. */
  private readonly hits = new Map<string, BuiltImage>();

  constructor(
    private readonly inner: Builder,
    /** Where the results are remembered (the agent's state dir). */
    private readonly dir: string,
    private readonly registry: RegistryClient,
    private readonly log: (line: string) => void,
  ) {
    this.platform = inner.platform;
    this.emulated = inner.emulated;
    if (inner.removeLeftovers) this.removeLeftovers = () => inner.removeLeftovers!();
  }

  async setup(job: PlatformBuildJob, context: BuildContext): Promise<void> {
    const image = job.noCache ? undefined : await this.lookup(job, context);
    if (image) {
      this.hits.set(job.buildId, image);
      context.log(`built before by this agent with the same inputs: reusing ${image.digest}`);
      return;
    }
    await this.inner.setup(job, context);
  }

  async run(job: PlatformBuildJob, context: BuildContext): Promise<BuiltImage> {
    const hit = this.hits.get(job.buildId);
    if (hit) return hit;
    const image = await this.inner.run(job, context);
    await this.remember(job, image).catch((error: Error) =>
      this.log(`could not remember the result of ${job.buildId}: ${error.message}`),
    );
    return image;
  }

  async destroy(job: PlatformBuildJob): Promise<void> {
    if (this.hits.delete(job.buildId)) return;
    await this.inner.destroy(job);
  }

  /** Stale records first (least loss: see STALE_RESULT_DAYS), then the wrapped builder's caches. */
  async *cachePruneSteps(): AsyncGenerator<CachePruneStep> {
    yield {
      what: `result-cache records not used for ${STALE_RESULT_DAYS} days`,
      remove: () => this.removeRecordsUsedBefore(Date.now() - STALE_RESULT_DAYS * 86_400_000),
    };
    if (this.inner.cachePruneSteps) yield* this.inner.cachePruneSteps();
  }

  /** Records (and temp files a crash left) last written or hit before `time`. */
  async removeRecordsUsedBefore(time: number): Promise<void> {
    const names = await readdir(this.dir).catch(() => [] as string[]);
    for (const name of names) {
      const file = join(this.dir, name);
      const stats = await stat(file).catch(() => undefined);
      if (stats?.isFile() && stats.mtimeMs < time) await rm(file, { force: true });
    }
  }

  private async lookup(job: PlatformBuildJob, context: BuildContext): Promise<BuiltImage | undefined> {
    let remembered: Remembered;
    try {
      remembered = JSON.parse(await readFile(this.file(job), 'utf8')) as Remembered;
    } catch {
      return undefined;
    }
    if (remembered.registry !== job.pushTo.registry) return undefined;
    const image = { digest: remembered.digest, mediaType: remembered.mediaType, size: remembered.size };
    try {
      if (!(await this.registry.headManifest(job.pushTo, image.digest))) {
        if (remembered.repository === job.pushTo.repository) return undefined;
        const from = { registry: remembered.registry, repository: remembered.repository };
        if (!(await this.registry.headManifest(from, image.digest))) return undefined;
        context.log(`mounting ${image.digest} from ${remembered.repository}`);
        await this.registry.copyManifest(from, image.digest, job.pushTo);
      }
      // Its last use, which the cache pruner goes by (STALE_RESULT_DAYS).
      const now = new Date();
      await utimes(this.file(job), now, now).catch(() => undefined);
      return image;
    } catch (error) {
      // The registry is unsure or refuses: building is always correct.
      context.log(`not reusing ${image.digest}: ${(error as Error).message}`);
      return undefined;
    }
  }

  private async remember(job: PlatformBuildJob, image: BuiltImage): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    const file = this.file(job);
    const record: Remembered = { ...image, registry: job.pushTo.registry, repository: job.pushTo.repository };
    // Written beside its place and renamed: a reader never sees half a record.
    await writeFile(`${file}.${job.buildId}.tmp`, JSON.stringify(record));
    await rename(`${file}.${job.buildId}.tmp`, file);
  }

  private file(job: PlatformBuildJob): string {
    return join(this.dir, `${resultKey(job, this.platform, this.emulated)}.json`);
  }
}

/**
 * Everything of the job that goes into the image, hashed: the whole payload but the build id,
 * the push target, the routing labels, the run number and the no-cache flag (a no-cache build
 * refreshes the entry later builds find), so a field added to jobs later is part of the key.
 */
export function resultKey(job: PlatformBuildJob, platform: unknown, emulated: boolean): string {
  const { buildId: _buildId, pushTo: _pushTo, requires: _requires, retry: _retry, noCache: _noCache, ...inputs } = job;
  return createHash('sha256')
    .update(canonicalJson({ recipe: RECIPE_VERSION, platform, emulated, inputs }))
    .digest('hex');
}

/** JSON with object keys sorted, so equal inputs always hash the same. */
function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}
