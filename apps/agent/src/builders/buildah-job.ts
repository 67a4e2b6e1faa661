import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { UnrecoverableError } from 'bullmq';
import { InvalidRepoPathError, resolveInCheckout } from '@farm/git';
import { normalizeRegistry, parseImageReference } from '@farm/oci';
import { SECRET_NAME, type PlatformBuildJob } from '@farm/queue';

/** What the local and the SSH backend share about running one job with buildah. */

/**
 * The `buildah bud` arguments after the global storage flags. buildah commits the image
 * straight into an OCI layout, its layers gzip-compressed as a push would compress them: no
 * separate `buildah push` (~100-200 ms per build), and nothing tagged in the storage. With
 * `--layers` the storage keeps every step's result (untagged) as the agent's layer cache: a
 * rebuild after a change reruns only the steps from the first changed one (measured by the
 * bench: an unchanged RUN is reused). Labels are not bud's business: see imageLabels.
 *
 * With the registry layer cache (see registry-cache.ts) bud also looks steps up in, and pushes
 * them to, `cacheRepository`, and tags the image in storage (`tag`) instead: buildah 1.28 cannot
 * push to the cache with an OCI-layout output.
 */
export function budArguments(
  job: PlatformBuildJob,
  paths: {
    platform: string;
    dockerfile: string;
    contextDir: string;
    /** Where the image goes: `oci:<layout>:image`, or a name in storage (with the cache). */
    tag: string;
    /** The registry layer cache's repository for this platform, when the cache is on. */
    cacheRepository?: string;
    /** Build secret id -> the file holding it (see writeSecretFiles). */
    secretFiles?: Record<string, string>;
  },
): string[] {
  const args = ['bud', '--isolation', 'chroot', '--platform', paths.platform, '--format', 'oci', '--layers'];
  args.push('--disable-compression=false', '--file', paths.dockerfile, '--tag', paths.tag);
  // Every step runs again; buildah still stores the new results for later builds.
  if (job.noCache) args.push('--no-cache');
  if (paths.cacheRepository) {
    // A no-cache job reads nothing from the registry cache either, but refreshes it with the
    // steps it built, as it refreshes the local storage: later builds find the new results.
    if (!job.noCache) args.push('--cache-from', paths.cacheRepository);
    args.push('--cache-to', paths.cacheRepository);
  }
  for (const [name, value] of Object.entries(job.buildArgs)) args.push('--build-arg', `${name}=${value}`);
  // Secrets as files a RUN mounts (--mount=type=secret,id=NAME): never build args, which the
  // image history records. The argument names the file, not the value.
  for (const [name, file] of Object.entries(paths.secretFiles ?? {})) args.push('--secret', `id=${name},src=${file}`);
  if (job.target) args.push('--target', job.target);
  args.push(paths.contextDir);
  return args;
}

/**
 * The labels the built image gets: the commit it was built from and its repository, unless the
 * request labels them otherwise, and the request's labels. The builders set them in the image
 * config of the layout before the push (labelOciLayoutImage), not with bud's `--label`: buildah
 * 1.28 makes each a build step of its own, and the revision changes on every commit, so a
 * rebuild whose every step is cached still paid for two step commits (~120 ms per platform).
 */
export function imageLabels(job: PlatformBuildJob): Record<string, string> {
  const labels: Record<string, string> = {};
  // An uploaded context has no commit or repository to name.
  if (job.commit) labels['org.opencontainers.image.revision'] = job.commit;
  if (job.repo) labels['org.opencontainers.image.source'] = job.repo;
  return { ...labels, ...job.labels };
}

/**
 * A job's registries.conf: no unqualified-search registries, and plain HTTP for the
 * FARM_INSECURE_REGISTRIES hosts and for loopback registries the Dockerfile names or the
 * registry layer cache is on (as Docker allows loopback registries over HTTP).
 */
export function registriesConf(dockerfile: string, insecureRegistries: string[], cacheRegistry?: string): string {
  const loopbackCache = cacheRegistry ? loopbackRegistries(`${cacheRegistry}/`) : [];
  const insecure = [...new Set([...insecureRegistries, ...loopbackRegistries(dockerfile), ...loopbackCache])];
  return [
    'unqualified-search-registries = []',
    '',
    ...insecure.flatMap((host) => ['[[registry]]', `location = "${host}"`, 'insecure = true', '']),
  ].join('\n');
}

/** Loopback registries (`127.0.0.1:5000/`, `localhost/`, `[::1]:5000/`) a Dockerfile refers to. */
export function loopbackRegistries(dockerfile: string): string[] {
  const found = dockerfile.match(/(?<=^|[\s=])(localhost|127(?:\.\d{1,3}){3}|\[::1\])(:\d{1,5})?(?=\/)/g) ?? [];
  return [...new Set(found)];
}

/**
 * Writes each build secret to a file of its own in `dir` (created 0700, files 0600), for
 * buildah's `--secret id=NAME,src=FILE`; the caller removes `dir` once buildah has ended.
 */
export async function writeSecretFiles(dir: string, secrets: Record<string, string>): Promise<Record<string, string>> {
  const files: Record<string, string> = {};
  if (Object.keys(secrets).length === 0) return files;
  await mkdir(dir, { recursive: true, mode: 0o700 });
  for (const [name, value] of Object.entries(secrets)) {
    if (!SECRET_NAME.test(name)) throw new UnrecoverableError(`invalid build secret id ${JSON.stringify(name)}`);
    files[name] = join(dir, name);
    await writeFile(files[name], value, { mode: 0o600, flag: 'wx' });
  }
  return files;
}

/** A repository path (Dockerfile, context) must exist and stay inside the checkout, also through symlinks. */
export async function insideCheckout(checkout: string, path: string, field: string): Promise<string> {
  try {
    return await resolveInCheckout(checkout, path, field);
  } catch (error) {
    // The same commit has the same tree: retrying will not help.
    if (error instanceof InvalidRepoPathError) throw new UnrecoverableError(error.message);
    throw error;
  }
}

/** A Dockerfile may name at most this many base repositories to mount from; the rest are uploaded. */
const MAX_MOUNT_SOURCES = 3;

/**
 * The repositories of `registry` the Dockerfile's stages start FROM: the built image's base
 * layers are already there, so the push mounts them (`POST ...?mount=&from=`) instead of
 * uploading them again when the target repository lacks them. References with build args
 * (`FROM ${BASE}`), stage names and other registries are left out.
 */
export function mountSources(dockerfile: string, registry: string): string[] {
  const target = normalizeRegistry(registry);
  const sources = new Set<string>();
  for (const match of dockerfile.matchAll(/^\s*FROM\s+(?:--platform=\S+\s+)?(\S+)/gim)) {
    const image = match[1];
    if (image.includes('$')) continue;
    try {
      const ref = parseImageReference(image);
      if (ref.registry === target) sources.add(ref.repository);
    } catch {
      // Not an image reference buildah would accept either: the build reports it.
    }
  }
  return [...sources].slice(0, MAX_MOUNT_SOURCES);
}
