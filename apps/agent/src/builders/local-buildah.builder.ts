import { mkdir, readFile, realpath, rm, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { UnrecoverableError } from 'bullmq';
import { GitMirrors, RefNotFoundError } from '@farm/git';
import { formatPlatform, type Platform } from '@farm/domain';
import { labelOciLayoutImage, type RegistryClient } from '@farm/oci';
import type { PlatformBuildJob } from '@farm/queue';
import { ProcessError, runProcess } from '../run-process';
import type { Builder, BuildContext, BuiltImage, CachePruneStep } from './builder';
import {
  budArguments,
  imageLabels,
  insideCheckout,
  mountSources,
  registriesConf,
  writeSecretFiles,
} from './buildah-job';
import {
  JOB_IMAGE_PREFIX,
  pushToLayoutArguments,
  RegistryLayerCache,
  type BudOutput,
  type RegistryCacheSetting,
} from './registry-cache';
import { fetchUploadedContext } from './uploaded-context';

export interface LocalBuildahOptions {
  platform: Platform;
  emulated: boolean;
  /** Holds this agent's buildah storage (kept between jobs: the layer cache) and work dirs. */
  stateDir: string;
  allowFileRepos: boolean;
  registry: RegistryClient;
  /** Hosts buildah may pull base images from over plain HTTP. */
  insecureRegistries: string[];
  /** docker config.json content for pulls of private base images, or undefined. */
  registryAuth?: unknown;
  /** Where uploaded contexts (`farm build --upload`) are fetched from; undefined: none are built. */
  contextRepository?: { registry: string; repository: string };
  /** FARM_REGISTRY_CACHE: the registry layer cache the agents of a pool share; undefined: none. */
  registryCache?: RegistryCacheSetting;
}

/** Builds with the buildah of this host (`--isolation chroot`, as root), pushes by digest. */
export class LocalBuildahBuilder implements Builder {
  readonly platform: Platform;
  readonly emulated: boolean;
  private readonly storageRoot: string;
  private readonly runRoot: string;
  /** One bare mirror per repository, kept between jobs like the storage: a rebuild fetches only new commits. */
  private readonly mirrors: GitMirrors;
  private readonly registryCache?: RegistryLayerCache;
  /** Jobs set up and not yet destroyed, with the mirror each checked out from (none: an uploaded context). */
  private readonly activeJobs = new Map<string, string | undefined>();

  constructor(private readonly options: LocalBuildahOptions) {
    this.platform = options.platform;
    this.emulated = options.emulated;
    this.storageRoot = join(options.stateDir, 'storage');
    this.runRoot = join(options.stateDir, 'run');
    this.mirrors = new GitMirrors(join(options.stateDir, 'git'));
    if (options.registryCache) this.registryCache = new RegistryLayerCache(options.registryCache, options.platform);
  }

  /**
   * At agent start: what a previous run of this agent left behind (killed mid-build, or a
   * failed build's working container, a job's image name) goes; base images and layers stay as cache.
   */
  async cleanUpPreviousRun(log: (line: string) => void): Promise<void> {
    await rm(join(this.options.stateDir, 'work'), { recursive: true, force: true });
    await this.buildah('rm', '--all').catch((error: Error) =>
      log(`could not remove leftover build containers: ${error.message}`),
    );
    await this.removeJobImageNames().catch((error: Error) =>
      log(`could not remove leftover job image names: ${error.message}`),
    );
  }

  async setup(job: PlatformBuildJob, context: BuildContext): Promise<void> {
    this.activeJobs.set(job.buildId, job.contextDigest ? undefined : this.mirrors.mirrorPath(job.repo));
    const dir = this.workDir(job);
    await rm(dir, { recursive: true, force: true });
    await mkdir(dir, { recursive: true });
    if (job.contextDigest) {
      const source = { registry: this.options.registry, repository: this.options.contextRepository };
      return fetchUploadedContext(job.contextDigest, source, join(dir, 'src'), context);
    }
    context.log(`checking out ${job.repo} at ${job.commit}`);
    try {
      await this.mirrors.checkout(job.repo, job.commit, join(dir, 'src'), {
        allowFile: this.options.allowFileRepos,
        signal: context.signal,
        onLog: context.log,
      });
    } catch (error) {
      // A commit the repository does not have will not appear on a retry: fail once, clearly.
      if (error instanceof RefNotFoundError) {
        throw new UnrecoverableError(`commit ${job.commit} is not in ${job.repo}: ${error.message}`);
      }
      throw error;
    }
  }

  async run(job: PlatformBuildJob, context: BuildContext): Promise<BuiltImage> {
    const dir = this.workDir(job);
    const source = await realpath(join(dir, 'src'));
    const contextDir = await insideCheckout(source, job.context, 'context');
    const dockerfile = await insideCheckout(source, job.dockerfile, 'dockerfile');
    const env = await this.buildahEnv(job, dockerfile);
    const platform = formatPlatform(this.platform);
    const layout = join(dir, 'oci');
    const secretsDir = join(dir, 'secrets');
    const secretFiles = await writeSecretFiles(secretsDir, context.secrets ?? {});
    /** The job's name in storage, once a bud was told to tag the image there (registry cache). */
    let storageImage: string | undefined;
    const bud = async (output: BudOutput): Promise<void> => {
      storageImage ??= output.storageImage;
      const args = budArguments(job, { platform, dockerfile, contextDir, secretFiles, ...output });
      await runProcess('buildah', [...this.globalArgs(), ...args], {
        env,
        cwd: source,
        signal: context.signal,
        onLine: context.log,
        name: 'buildah bud',
      });
    };
    context.log(`building ${platform}${this.emulated ? ' (emulated with qemu-user)' : ''}`);
    try {
      let output: BudOutput = { tag: `oci:${layout}:image` };
      try {
        if (this.registryCache) output = await this.registryCache.build(job, layout, context, bud);
        else await bud(output);
      } catch (error) {
        // The same source fails the same way again (Dockerfile error, failing RUN): no retry.
        if (error instanceof ProcessError && error.exitCode !== null && !context.signal.aborted) {
          throw new UnrecoverableError(`build failed: ${error.message}`);
        }
        throw error;
      } finally {
        // Secrets are on disk only while buildah runs.
        await rm(secretsDir, { recursive: true, force: true });
      }
      if (output.storageImage) {
        const push = pushToLayoutArguments(output.storageImage, layout);
        await runProcess('buildah', [...this.globalArgs(), ...push], {
          env,
          signal: context.signal,
          onLine: context.log,
          name: 'buildah push',
        });
      }
    } finally {
      // The name goes, the layers stay as cache; a bud that failed early may not have tagged anything.
      if (storageImage) {
        await this.buildah('rmi', storageImage).catch(() => undefined);
      }
    }

    // The farm's registry client pushes the layout by digest, without a tag.
    context.onPhase?.('pushing');
    context.log(`pushing to ${job.pushTo.registry}/${job.pushTo.repository}`);
    // Base layers the target lacks are mounted from the base image's repository when it is on the same registry.
    const mountFrom = mountSources(await readFile(dockerfile, 'utf8'), job.pushTo.registry);
    await labelOciLayoutImage(layout, imageLabels(job));
    const descriptor = await this.options.registry.pushOciLayout(layout, job.pushTo, { mountFrom });
    context.log(`pushed ${descriptor.digest}`);
    return { digest: descriptor.digest, mediaType: descriptor.mediaType, size: descriptor.size };
  }

  /** A killed `buildah bud` leaves its working container behind (mounted); base images stay. */
  async removeLeftovers(): Promise<void> {
    await this.buildah('rm', '--all');
  }

  async destroy(job: PlatformBuildJob): Promise<void> {
    this.activeJobs.delete(job.buildId);
    // The image lives in the work dir's OCI layout; with the registry cache, run() already
    // removed its name from storage. Removing the dir is enough.
    await rm(this.workDir(job), { recursive: true, force: true });
  }

  /**
   * Least loss first: git mirrors, least recently used first (a fetch brings a commit back),
   * then the layer cache's intermediate images (later builds run their steps again), then every
   * image, base images too (pulled again). Mirrors of jobs set up here stay, and storage is not
   * touched at all while any job is: its build may be using the images.
   */
  async *cachePruneSteps(): AsyncGenerator<CachePruneStep> {
    const inUse = [...this.activeJobs.values()].filter((mirror) => mirror !== undefined);
    for (const mirror of await this.mirrors.byLastUse()) {
      // A mirror being created (`<mirror>.new-*`) counts as the mirror.
      if (inUse.some((used) => mirror.path.startsWith(used))) continue;
      const what = mirror.path.endsWith('.git')
        ? `git mirror ${basename(mirror.path)} (last used ${mirror.lastUsed.toISOString()})`
        : `leftover ${basename(mirror.path)} in the git mirrors`;
      yield { what, remove: () => this.mirrors.remove(mirror.path) };
    }
    if (this.activeJobs.size > 0) return;
    yield {
      what: 'the layer cache (buildah rmi --prune: untagged and intermediate images)',
      remove: () => this.buildah('rmi', '--prune'),
    };
    // Nothing runs: any container left is a killed build's, which --force removes with its image.
    yield {
      what: 'every image, base images too (buildah rmi --all --force)',
      remove: () => this.buildah('rmi', '--all', '--force'),
    };
  }

  /** Job image names (registry cache) that a killed agent left in storage; their layers stay as cache. */
  private async removeJobImageNames(): Promise<void> {
    const names: string[] = [];
    await runProcess('buildah', [...this.globalArgs(), 'images', '--noheading', '--format', '{{.Name}}:{{.Tag}}'], {
      name: 'buildah images',
      // Every line: runProcess keeps only the last few.
      onLine: (line) => {
        if (line.trim().startsWith(JOB_IMAGE_PREFIX)) names.push(line.trim());
      },
    });
    if (names.length > 0) await this.buildah('rmi', ...names);
  }

  /** A buildah command on this agent's storage, for housekeeping (builds pass their own env and output). */
  private async buildah(...args: string[]): Promise<void> {
    await runProcess('buildah', [...this.globalArgs(), ...args], { name: `buildah ${args[0]}` });
  }

  private workDir(job: PlatformBuildJob): string {
    return join(this.options.stateDir, 'work', `${job.buildId}-${formatPlatform(this.platform).replace(/\//g, '-')}`);
  }

  private globalArgs(): string[] {
    return ['--root', this.storageRoot, '--runroot', this.runRoot, '--storage-driver', 'overlay'];
  }

  /**
   * buildah reads registries and credentials from files, so each job gets its own
   * registries.conf (see registriesConf) and a 0600 auth file.
   */
  private async buildahEnv(job: PlatformBuildJob, dockerfile?: string): Promise<NodeJS.ProcessEnv> {
    const dir = this.workDir(job);
    const registries = join(dir, 'registries.conf');
    const dockerfileText = dockerfile ? await readFile(dockerfile, 'utf8') : '';
    const conf = registriesConf(dockerfileText, this.options.insecureRegistries, this.options.registryCache?.registry);
    await writeFile(registries, conf);
    const env: NodeJS.ProcessEnv = {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      TMPDIR: join(dir, 'tmp'),
      CONTAINERS_REGISTRIES_CONF: registries,
      BUILDAH_ISOLATION: 'chroot',
    };
    await mkdir(env.TMPDIR as string, { recursive: true });
    if (this.options.registryAuth) {
      const authFile = join(dir, 'auth.json');
      await writeFile(authFile, JSON.stringify(this.options.registryAuth), { mode: 0o600 });
      env.REGISTRY_AUTH_FILE = authFile;
    }
    return env;
  }
}
