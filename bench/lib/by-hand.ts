import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { createIsolatedBuildah, type IsolatedBuildah } from '../../test/helpers/base-images';

const run = promisify(execFile);

/** Milliseconds each step of one by-hand build took, and what it published. */
export interface HandRun {
  totalMs: number;
  steps: { clone: number; bud: number; push: number; merge: number };
  /** Digest of the index `manifest push --all` put under the tag. */
  digest: string;
}

export interface HandBuildRequest {
  repoUrl: string;
  /**
   * Fresh clone (a cold build), or fetch + checkout in the checkout the previous build left, as
   * someone rebuilding in their working copy does.
   */
  checkout: 'clone' | 'reuse';
  commit: string;
  platforms: string[];
  /** `host:port/repository` on a loopback registry, reached over plain HTTP. */
  repository: string;
  tag: string;
}

/**
 * Where the by-hand builds keep images. `per-platform`: one storage per platform, as each agent
 * has its own. `shared`: one storage for every platform, as a single `buildah` user has; there
 * the base image's tag flips between architectures, so every build pulls its base again.
 */
export type HandStorage = 'per-platform' | 'shared';

/**
 * What an engineer does by hand for a multi-arch image, with the same tools the farm's agents
 * use: clone the exact commit into a fresh dir, `buildah bud --isolation chroot` for every
 * platform in parallel, push each image and note its digest, then `buildah manifest
 * create/add/push --all` under the tag. Storage (overlay) is kept between builds, like an agent's,
 * and `bud` runs with `--layers` as the farm's agents do, so a rebuild by hand reuses unchanged
 * steps too (the fair comparison for the rebuild figures).
 */
export class HandBuilder {
  private constructor(
    private readonly stores: Map<string, IsolatedBuildah>,
    /** Holds the manifest lists. */
    private readonly main: IsolatedBuildah,
    /** The working copy, kept between builds. */
    private readonly src: string,
  ) {}

  static async create(platforms: string[], storage: HandStorage): Promise<HandBuilder> {
    const stores = new Map<string, IsolatedBuildah>();
    try {
      if (storage === 'shared') {
        const store = await createIsolatedBuildah();
        for (const platform of platforms) stores.set(platform, store);
      } else {
        for (const platform of platforms) stores.set(platform, await createIsolatedBuildah());
      }
    } catch (error) {
      await Promise.all([...new Set(stores.values())].map((store) => store.remove()));
      throw error;
    }
    const main = stores.get(platforms[0])!;
    return new HandBuilder(stores, main, join(main.dir, 'src'));
  }

  async build(request: HandBuildRequest, runName: string): Promise<HandRun> {
    const work = await mkdtemp(join(tmpdir(), 'farm-bench-hand-'));
    const list = `bench-hand-list-${runName}`;
    const imageOf = (platform: string) => `localhost/bench-hand:${platform.replace(/\//g, '-')}`;
    const storeOf = (platform: string) => {
      const store = this.stores.get(platform);
      if (!store) throw new Error(`no storage for ${platform}`);
      return store;
    };
    try {
      const started = performance.now();
      const src = this.src;
      if (request.checkout === 'clone') {
        await rm(src, { recursive: true, force: true });
        await run('git', ['clone', '--quiet', request.repoUrl, src]);
      } else {
        await run('git', ['-C', src, 'fetch', '--quiet', 'origin']);
      }
      await run('git', ['-C', src, '-c', 'advice.detachedHead=false', 'checkout', '--quiet', request.commit]);
      const cloned = performance.now();

      await Promise.all(
        request.platforms.map((platform) =>
          storeOf(platform).buildah(
            'bud',
            '--isolation',
            'chroot',
            '--platform',
            platform,
            '--format',
            'oci',
            '--layers',
            '--tls-verify=false',
            '--tag',
            imageOf(platform),
            src,
          ),
        ),
      );
      const built = performance.now();

      // buildah 1.28 cannot push a compressed image under a digest it does not know yet, so
      // each image goes to a scratch tag and --digestfile says which digest it got.
      const digests = await Promise.all(
        request.platforms.map(async (platform) => {
          const digestFile = join(work, `${platform.replace(/\//g, '-')}.digest`);
          await storeOf(platform).buildah(
            'push',
            '--quiet',
            '--tls-verify=false',
            '--digestfile',
            digestFile,
            imageOf(platform),
            `docker://${request.repository}:scratch-${platform.replace(/\//g, '-')}`,
          );
          return (await readFile(digestFile, 'utf8')).trim();
        }),
      );
      const pushed = performance.now();

      await this.main.buildah('manifest', 'create', list);
      for (const digest of digests) {
        await this.main.buildah(
          'manifest',
          'add',
          '--tls-verify=false',
          list,
          `docker://${request.repository}@${digest}`,
        );
      }
      const indexDigestFile = join(work, 'index.digest');
      await this.main.buildah(
        'manifest',
        'push',
        '--quiet',
        '--all',
        '--tls-verify=false',
        '--digestfile',
        indexDigestFile,
        list,
        `docker://${request.repository}:${request.tag}`,
      );
      const merged = performance.now();
      return {
        totalMs: merged - started,
        steps: { clone: cloned - started, bud: built - cloned, push: pushed - built, merge: merged - pushed },
        digest: (await readFile(indexDigestFile, 'utf8')).trim(),
      };
    } finally {
      await this.main.buildah('manifest', 'rm', list).catch(() => undefined);
      await rm(work, { recursive: true, force: true });
    }
  }

  /** Deletes the storage and everything in it. */
  async remove(): Promise<void> {
    for (const store of new Set(this.stores.values())) await store.remove();
  }
}

/** The manifest digest a registry serves for `repository:tag` (index media types accepted). */
export async function tagDigest(registryUrl: string, repositoryPath: string, tag: string): Promise<string | null> {
  const response = await fetch(`${registryUrl}/v2/${repositoryPath}/manifests/${tag}`, {
    method: 'HEAD',
    headers: {
      accept: [
        'application/vnd.oci.image.index.v1+json',
        'application/vnd.docker.distribution.manifest.list.v2+json',
        'application/vnd.oci.image.manifest.v1+json',
        'application/vnd.docker.distribution.manifest.v2+json',
      ].join(', '),
    },
  });
  return response.ok ? response.headers.get('docker-content-digest') : null;
}
