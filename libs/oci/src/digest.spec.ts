import { createHash } from 'node:crypto';
import { DigestVerifier, matchesDigest, parseDigest, sha256Digest } from './digest';

describe('digests', () => {
  const data = Buffer.from('hello');
  const sha256 = `sha256:${createHash('sha256').update(data).digest('hex')}`;
  const sha512 = `sha512:${createHash('sha512').update(data).digest('hex')}`;

  it('computes and verifies sha256 and sha512 digests', () => {
    expect(sha256Digest(data)).toBe(sha256);
    expect(matchesDigest(data, sha256)).toBe(true);
    expect(matchesDigest(data, sha512)).toBe(true);
    expect(matchesDigest(Buffer.from('hellO'), sha256)).toBe(false);
    const verifier = new DigestVerifier(sha256);
    verifier.update(data.subarray(0, 2));
    verifier.update(data.subarray(2));
    expect([verifier.digest(), verifier.bytes]).toEqual([sha256, 5]);
  });

  it('refuses digests it cannot verify or that could escape a path', () => {
    for (const bad of [
      'md5:abc',
      `sha256:${'A'.repeat(64)}`,
      'sha256:../../etc/passwd',
      'sha256',
      `sha256:${'a'.repeat(63)}`,
    ]) {
      expect(() => parseDigest(bad)).toThrow('unsupported or malformed digest');
    }
  });
});
