import { createHash } from 'node:crypto';
import { formatPlatform, type Platform } from '@farm/domain';
import type { PlatformBuildJob } from '@farm/queue';
import type { BuildContext } from './builder';

/**
 * The registry layer cache (FARM_REGISTRY_CACHE, opt-in per agent): `buildah bud --layers
 * --cache-from/--cache-to` against one repository per platform, so that a fresh agent of a pool
 * starts with the steps its pool built before, and platforms never overwrite each other's cache.
 *
 * buildah 1.28 cannot combine `--cache-to` with an OCI-layout output (it looks the final image
 * up in storage: "image not known"), so with the cache bud tags the image in the builder's
 * storage under a per-job name; the builder then pushes it into the job's OCI layout (gzip, as
 * bud writes it without the cache) and removes the name. The layers stay in storage as the
 * local cache. Without the setting, nothing of this happens: bud writes the layout directly.
 */

/** `<registry>/<repository prefix>` of FARM_REGISTRY_CACHE. */
export interface RegistryCacheSetting {
  registry: string;
  repository: string;
}

/** The namespace of the per-job names in a builder's storage; whatever is there at start is a leftover. */
export const JOB_IMAGE_PREFIX = 'localhost/farm-job/';

/**
 * After the cache failed a build, this builder leaves it out for so long. buildah retries a
 * registry that is down (3 times, 2 s apart) for the first cache lookup and again for the first
 * cache push, which fails the build; without a pause every build would pay that and build twice.
 */
export const SUSPEND_AFTER_FAILURE_MS = 5 * 60_000;

/** How bud stores the image of one job. */
export interface BudOutput {
  /** bud's `--tag`. */
  tag: string;
  /** With the cache: bud tags the image in storage, to be pushed into the layout and untagged. */
  storageImage?: string;
  /** With the cache: the repository for `--cache-from/--cache-to`. */
  cacheRepository?: string;
}

/** The cache of one builder: its platform's repository, left out for a while after it failed a build. */
export class RegistryLayerCache {
  /** `<registry>/<prefix>/buildcache-<os>-<arch>[-<variant>]` */
  readonly repository: string;
  private suspendedUntil = 0;

  constructor(
    setting: RegistryCacheSetting,
    private readonly platform: Platform,
  ) {
    this.repository = cacheRepository(setting, platform);
  }

  /**
   * Runs bud with the cache (`bud` gets the output to use). When the build fails because
   * buildah could not push to the cache (a cache lookup that fails is only a warning to
   * buildah), the cache is suspended and bud runs once more without it: a cache is an
   * optimisation, and the steps built so far are in storage, so the second run reuses them.
   */
  async build(
    job: PlatformBuildJob,
    layout: string,
    context: BuildContext,
    bud: (output: BudOutput) => Promise<void>,
  ): Promise<BudOutput> {
    const direct: BudOutput = { tag: `oci:${layout}:image` };
    if (Date.now() < this.suspendedUntil) {
      const until = new Date(this.suspendedUntil).toISOString();
      context.log(`registry layer cache ${this.repository}: left out until ${until} after it failed a build`);
      await bud(direct);
      return direct;
    }
    const image = jobImageName(job, this.platform);
    const cached: BudOutput = { tag: image, storageImage: image, cacheRepository: this.repository };
    try {
      await bud(cached);
      return cached;
    } catch (error) {
      const failure = cachePushFailure(error);
      if (failure === undefined || context.signal.aborted) throw error;
      this.suspendedUntil = Date.now() + SUSPEND_AFTER_FAILURE_MS;
      context.log(
        `registry layer cache ${this.repository} failed (${failure}): building without it, and leaving it out ` +
          `for ${SUSPEND_AFTER_FAILURE_MS / 60_000} minutes`,
      );
    }
    await bud(direct);
    return direct;
  }
}

/** The cache repository of a platform: platforms never share one. */
export function cacheRepository(setting: RegistryCacheSetting, platform: Platform): string {
  return `${setting.registry}/${setting.repository}/buildcache-${formatPlatform(platform).replace(/\//g, '-')}`;
}

/**
 * The job's image name in the builder's storage while it is pushed into the layout:
 * `localhost/farm-job/<buildId>-<os>-<arch>[-<variant>]`. A build id that is not a valid
 * lowercase name component is replaced by its hash (image names are lowercase).
 */
export function jobImageName(job: PlatformBuildJob, platform: Platform): string {
  const id = /^[a-z0-9]+(?:[._-][a-z0-9]+)*$/.test(job.buildId)
    ? job.buildId
    : createHash('sha256').update(job.buildId).digest('hex').slice(0, 32);
  return `${JOB_IMAGE_PREFIX}${id}-${formatPlatform(platform).replace(/\//g, '-')}`;
}

/**
 * `buildah push` arguments (after the global storage flags) copying the job's image from storage
 * into the OCI layout, layers gzip-compressed as bud writes them without the cache.
 */
export function pushToLayoutArguments(image: string, layout: string): string[] {
  return [
    'push',
    '--quiet',
    '--format',
    'oci',
    '--disable-compression=false',
    '--compression-format',
    'gzip',
    image,
    `oci:${layout}:image`,
  ];
}

/** buildah's last words when pushing a step to `--cache-to` failed. */
const CACHE_PUSH_FAILED = /^Error: failed pushing cache to /;

/** Why bud failed, when it failed because the cache push did; undefined for any other failure. */
export function cachePushFailure(error: unknown): string | undefined {
  const lines = (error as { lastLines?: unknown } | null)?.lastLines;
  if (!Array.isArray(lines)) return undefined;
  // buildah's own last words (an SSH channel may deliver a stdout line after them).
  const last = lines.filter((line): line is string => typeof line === 'string' && line.startsWith('Error: ')).pop();
  if (!last || !CACHE_PUSH_FAILED.test(last)) return undefined;
  // buildah names the destination as a Go struct; the cause after it is what helps.
  const end = last.indexOf('}}:');
  return end < 0 ? last : last.slice(end + 3).trim() || last;
}
