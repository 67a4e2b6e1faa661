import { createHash } from 'node:crypto';
import { quote } from './quote';

// go-digest's registered algorithms and their hex lengths; OCI requires lowercase hex.
const HEX_LENGTH: ReadonlyMap<string, number> = new Map([
  ['sha256', 64],
  ['sha384', 96],
  ['sha512', 128],
]);

// The OCI digest grammar: algorithm-component ([+._-] algorithm-component)* ":" encoded
const DIGEST = /^([a-z0-9]+(?:[+._-][a-z0-9]+)*):([a-zA-Z0-9=_-]+)$/;

/** `sha256:<64 lowercase hex>` of the given bytes (a string is hashed as UTF-8). */
export function sha256Digest(data: Buffer | string): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

/** Whether `s` is a content digest a registry accepts: sha256, sha384 or sha512, lowercase hex of the right length. */
export function isDigest(s: string): boolean {
  return digestProblem(s) === undefined;
}

/** Why `s` is not a valid digest, or undefined when it is. Shared by references and indexes for their messages. */
export function digestProblem(s: string): string | undefined {
  if (typeof s !== 'string' || s === '') return 'digest is empty';
  const m = DIGEST.exec(s);
  if (!m) return `digest ${quote(s)} must be algorithm:hex, e.g. sha256:<64 hex digits>`;
  const [, algorithm, hex] = m;
  const length = HEX_LENGTH.get(algorithm);
  if (length === undefined) {
    return `unsupported digest algorithm ${quote(algorithm)}; supported: ${[...HEX_LENGTH.keys()].join(', ')}`;
  }
  if (hex.length !== length || !/^[a-f0-9]+$/.test(hex)) {
    return `${algorithm} digest must be ${length} lowercase hex digits, got ${quote(hex)}`;
  }
  return undefined;
}
