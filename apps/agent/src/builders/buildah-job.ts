import { UnrecoverableError } from 'bullmq';
import { InvalidRepoPathError, resolveInCheckout } from '@farm/git';
import type { PlatformBuildJob } from '@farm/queue';

/** What the local and the SSH backend share about running one job with buildah. */

/**
 * The `buildah bud` arguments after the global storage flags. buildah commits the image
 * straight into an OCI layout, its layers gzip-compressed as a push would compress them: no
 * separate `buildah push` (~100-200 ms per build), and nothing tagged in the storage, which
 * keeps only base images as cache. Every image says which commit it was built from, unless
 * the request labels it otherwise.
 */
export function budArguments(
  job: PlatformBuildJob,
  paths: { platform: string; dockerfile: string; contextDir: string; layout: string },
): string[] {
  const args = ['bud', '--isolation', 'chroot', '--platform', paths.platform, '--format', 'oci'];
  args.push('--disable-compression=false', '--file', paths.dockerfile, '--tag', `oci:${paths.layout}:image`);
  for (const [name, value] of Object.entries(job.buildArgs)) args.push('--build-arg', `${name}=${value}`);
  const labels = {
    'org.opencontainers.image.revision': job.commit,
    'org.opencontainers.image.source': job.repo,
    ...job.labels,
  };
  for (const [name, value] of Object.entries(labels)) args.push('--label', `${name}=${value}`);
  if (job.target) args.push('--target', job.target);
  args.push(paths.contextDir);
  return args;
}

/**
 * A job's registries.conf: no unqualified-search registries, and plain HTTP for the
 * FARM_INSECURE_REGISTRIES hosts and for loopback registries the Dockerfile names (as Docker
 * allows loopback registries over HTTP).
 */
export function registriesConf(dockerfile: string, insecureRegistries: string[]): string {
  const insecure = [...new Set([...insecureRegistries, ...loopbackRegistries(dockerfile)])];
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
