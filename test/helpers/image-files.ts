import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** What a real client sees: skopeo's raw manifest for a reference on a loopback registry. */
export async function skopeoRaw(reference: string): Promise<{ mediaType?: string; [key: string]: any }> {
  const { stdout } = await run('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${reference}`]);
  return JSON.parse(stdout);
}

/** skopeo's view of an image's config (architecture, os, ...). */
export async function skopeoConfig(
  reference: string,
): Promise<{ architecture: string; os: string; [key: string]: any }> {
  const { stdout } = await run('skopeo', ['inspect', '--config', '--tls-verify=false', `docker://${reference}`]);
  return JSON.parse(stdout);
}

/**
 * Reads a file from an image by going through its layers from the top (registry API for
 * blobs, the real `tar` to unpack them); undefined when no layer has it.
 */
export async function readFileFromImage(registryUrl: string, repository: string, manifestDigest: string, path: string) {
  const manifestResponse = await fetch(`${registryUrl}/v2/${repository}/manifests/${manifestDigest}`, {
    headers: {
      accept: 'application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json',
    },
  });
  if (!manifestResponse.ok) throw new Error(`manifest ${manifestDigest}: HTTP ${manifestResponse.status}`);
  const manifest = (await manifestResponse.json()) as { layers: { digest: string }[] };
  const dir = await mkdtemp(join(tmpdir(), 'farm-layer-'));
  try {
    for (const layer of [...manifest.layers].reverse()) {
      const blob = await fetch(`${registryUrl}/v2/${repository}/blobs/${layer.digest}`);
      const file = join(dir, layer.digest.replace(':', '-'));
      await writeFile(file, Buffer.from(await blob.arrayBuffer()));
      try {
        const { stdout } = await run('tar', ['-xzOf', file, path.replace(/^\//, '')]);
        return stdout;
      } catch {
        // not in this layer
      }
    }
    return undefined;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
