import { readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { matchesDigest, parseDigest, sha256Digest } from './digest';
import type { Descriptor } from './types';

/** The manifests an OCI image layout directory lists in its `index.json`. */
export async function readOciLayoutIndex(dir: string): Promise<Descriptor[]> {
  let layout: { imageLayoutVersion?: unknown };
  try {
    layout = JSON.parse(await readFile(join(dir, 'oci-layout'), 'utf8')) as typeof layout;
  } catch (err) {
    throw new Error(`${dir} is not an OCI image layout: cannot read oci-layout`, { cause: err });
  }
  if (layout.imageLayoutVersion !== '1.0.0') {
    throw new Error(`${dir}: unsupported OCI image layout version ${String(layout.imageLayoutVersion)}`);
  }
  let index: { manifests?: unknown };
  try {
    index = JSON.parse(await readFile(join(dir, 'index.json'), 'utf8')) as typeof index;
  } catch (err) {
    throw new Error(`${dir}: cannot read index.json`, { cause: err });
  }
  if (!Array.isArray(index.manifests)) throw new Error(`${dir}/index.json has no manifests array`);
  return index.manifests.map((entry: unknown, i) => checkDescriptor(entry, `${dir}/index.json manifests[${i}]`));
}

/** Path of a blob inside a layout; the digest is validated, so it cannot escape `dir`. */
export function layoutBlobPath(dir: string, digest: string): string {
  const { algorithm, encoded } = parseDigest(digest);
  return join(dir, 'blobs', algorithm, encoded);
}

/** Checks the fields a copy relies on: a digest it can verify and a size. */
export function checkDescriptor(entry: unknown, where: string): Descriptor {
  const d = entry as Partial<Descriptor> | null;
  if (
    typeof d !== 'object' ||
    d === null ||
    typeof d.digest !== 'string' ||
    typeof d.size !== 'number' ||
    !Number.isSafeInteger(d.size) ||
    d.size < 0
  ) {
    throw new Error(`${where} is not a valid descriptor`);
  }
  parseDigest(d.digest);
  return d as Descriptor;
}

/**
 * Adds `labels` to the image config of the single image an OCI layout holds, as BuildKit applies
 * `docker build --label`: in the config only, without a build step. The new config and manifest
 * are written as blobs of the layout and index.json points at the new manifest (its other fields,
 * such as the ref name annotation, kept); the old blobs stay, unreferenced. Labels already in the
 * config (the Dockerfile's LABEL) are overridden by equal names, as `--label` overrides them.
 *
 * Why not buildah's `--label`: buildah 1.28 turns each into a LABEL step of its own, committed
 * with `--layers` like any step (~60 ms each), and the revision label differs on every commit,
 * so even a build whose every step is cached paid for two commits.
 */
export async function labelOciLayoutImage(dir: string, labels: Record<string, string>): Promise<Descriptor> {
  const manifests = await readOciLayoutIndex(dir);
  if (manifests.length !== 1) throw new Error(`${dir}/index.json lists ${manifests.length} manifests; expected one`);
  const [entry] = manifests;
  if (Object.keys(labels).length === 0) return entry;

  const manifest = JSON.parse(await readVerified(dir, entry.digest)) as { config?: unknown; layers?: unknown };
  const configDescriptor = checkDescriptor(manifest.config, `${dir} manifest ${entry.digest} config`);
  const config = JSON.parse(await readVerified(dir, configDescriptor.digest)) as { config?: { Labels?: unknown } };
  const runConfig = config.config ?? {};
  const existing = typeof runConfig.Labels === 'object' && runConfig.Labels !== null ? runConfig.Labels : {};
  config.config = { ...runConfig, Labels: { ...existing, ...labels } };

  const newConfig = await writeBlob(dir, JSON.stringify(config));
  const newManifest = await writeBlob(
    dir,
    JSON.stringify({ ...manifest, config: { ...configDescriptor, digest: newConfig.digest, size: newConfig.size } }),
  );
  const updated: Descriptor = { ...entry, digest: newManifest.digest, size: newManifest.size };
  const index = JSON.parse(await readFile(join(dir, 'index.json'), 'utf8')) as Record<string, unknown>;
  // Written whole to a temporary name, then renamed: a reader never sees half an index.
  await writeFile(join(dir, 'index.json.tmp'), JSON.stringify({ ...index, manifests: [updated] }));
  await rename(join(dir, 'index.json.tmp'), join(dir, 'index.json'));
  return updated;
}

async function readVerified(dir: string, digest: string): Promise<string> {
  const body = await readFile(layoutBlobPath(dir, digest));
  if (!matchesDigest(body, digest)) throw new Error(`${dir}: blob ${digest} does not match its digest`);
  return body.toString('utf8');
}

async function writeBlob(dir: string, json: string): Promise<{ digest: string; size: number }> {
  const body = Buffer.from(json, 'utf8');
  const digest = sha256Digest(body);
  await writeFile(layoutBlobPath(dir, digest), body);
  return { digest, size: body.length };
}
