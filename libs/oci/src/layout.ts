import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseDigest } from './digest';
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
