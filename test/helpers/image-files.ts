import { execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import { RegistryClient, type RepositoryRef } from '@farm/oci';

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
 * A file of a pushed image as a client pulling it sees it: from the topmost layer that has it
 * (layers through `client`, so with its credentials; the real `tar` unpacks them); undefined
 * when no layer has it.
 */
export async function fileInImage(
  client: RegistryClient,
  repository: RepositoryRef,
  manifestDigest: string,
  path: string,
): Promise<string | undefined> {
  const { body } = await client.getManifest(repository, manifestDigest);
  const { layers } = JSON.parse(body.toString()) as { layers: { digest: string }[] };
  for (const layer of [...layers].reverse()) {
    const content = await fileInLayer(await client.getBlob(repository, layer.digest), path.replace(/^\//, ''));
    if (content !== undefined) return content;
  }
  return undefined;
}

/** {@link fileInImage} of `image` on `registry`, failing when no layer has the file. */
export async function requireFileInImage(
  client: RegistryClient,
  registry: string,
  image: { repository: string; digest: string },
  path: string,
): Promise<string> {
  const content = await fileInImage(client, { registry, repository: image.repository }, image.digest, path);
  if (content === undefined) throw new Error(`no ${path} in ${registry}/${image.repository}@${image.digest}`);
  return content;
}

/** {@link fileInImage} on a registry without authentication. */
export function readFileFromImage(registryUrl: string, repository: string, manifestDigest: string, path: string) {
  return fileInImage(new RegistryClient(), { registry: new URL(registryUrl).host, repository }, manifestDigest, path);
}

function fileInLayer(layer: Buffer, path: string): Promise<string | undefined> {
  return new Promise((resolve, reject) => {
    const tar = spawn('tar', ['-xzOf', '-', path], { stdio: ['pipe', 'pipe', 'ignore'] });
    let out = '';
    tar.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    tar.on('error', reject);
    tar.on('close', (code) => resolve(code === 0 ? out : undefined));
    tar.stdin.end(layer);
  });
}
