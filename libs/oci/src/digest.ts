import { createHash, type Hash } from 'node:crypto';

const ENCODED = { sha256: /^[a-f0-9]{64}$/, sha512: /^[a-f0-9]{128}$/ } as const;
type Algorithm = keyof typeof ENCODED;

/** Splits and validates a digest this client can verify (`sha256:` or `sha512:` + lower hex). */
export function parseDigest(digest: string): { algorithm: Algorithm; encoded: string } {
  const colon = digest.indexOf(':');
  const algorithm = digest.slice(0, colon);
  const encoded = digest.slice(colon + 1);
  if (colon < 0 || !(algorithm in ENCODED) || !ENCODED[algorithm as Algorithm].test(encoded)) {
    throw new Error(`unsupported or malformed digest "${digest}"`);
  }
  return { algorithm: algorithm as Algorithm, encoded };
}

/** `sha256:<hex>` of `data`. */
export function sha256Digest(data: Uint8Array): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

/** Computes the digest of `data` with the algorithm of `expected`, and compares. */
export function matchesDigest(data: Uint8Array, expected: string): boolean {
  const { algorithm, encoded } = parseDigest(expected);
  return createHash(algorithm).update(data).digest('hex') === encoded;
}

/** Hashes content as it streams by, for the algorithm of an expected digest. */
export class DigestVerifier {
  private readonly hash: Hash;
  private readonly algorithm: Algorithm;
  bytes = 0;

  constructor(readonly expected: string) {
    this.algorithm = parseDigest(expected).algorithm;
    this.hash = createHash(this.algorithm);
  }

  update(chunk: Uint8Array): void {
    this.hash.update(chunk);
    this.bytes += chunk.length;
  }

  /** The digest of everything seen so far; call once. */
  digest(): string {
    return `${this.algorithm}:${this.hash.digest('hex')}`;
  }
}
