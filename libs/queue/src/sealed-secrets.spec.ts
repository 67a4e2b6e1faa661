import { randomBytes } from 'node:crypto';
import { UnrecoverableError } from 'bullmq';
import { maskSecrets, openSecrets, sealSecrets } from './sealed-secrets';

describe('sealed build secrets', () => {
  const key = randomBytes(32);
  const secrets = { NPM_TOKEN: 'npm-token-value-123', 'ssh.key': 'line one of a key\nline two of a key' };

  it('open what was sealed for the same build, and nothing of the values shows in the sealed text', () => {
    const sealed = sealSecrets(secrets, key, 'build-1');
    expect(sealed).toMatch(/^v1\.[\w-]+\.[\w-]+\.[\w-]+$/);
    expect(sealed).not.toContain('npm-token');
    expect(openSecrets(sealed, key, 'build-1')).toEqual(secrets);
    // Sealed twice, never the same text (a fresh IV each time).
    expect(sealSecrets(secrets, key, 'build-1')).not.toBe(sealed);
  });

  it('refuse another build, another key, no key and an altered text, without retrying', () => {
    const sealed = sealSecrets(secrets, key, 'build-1');
    const altered = `${sealed.slice(0, -2)}${sealed.endsWith('A') ? 'B' : 'A'}${sealed.slice(-1)}`;
    for (const attempt of [
      () => openSecrets(sealed, key, 'build-2'),
      () => openSecrets(sealed, randomBytes(32), 'build-1'),
      () => openSecrets(sealed, undefined, 'build-1'),
      () => openSecrets(altered, key, 'build-1'),
      () => openSecrets('v2.a.b.c', key, 'build-1'),
    ]) {
      expect(attempt).toThrow(UnrecoverableError);
    }
    expect(() => openSecrets(sealed, undefined, 'build-1')).toThrow(/no FARM_SECRETS_KEY/);
  });

  it('mask values, and each line of a multi-line value, in log lines', () => {
    expect(maskSecrets('token is npm-token-value-123!', secrets)).toBe('token is ***!');
    expect(maskSecrets('> line two of a key', secrets)).toBe('> ***');
    expect(maskSecrets('abc', { SHORT: 'abc' })).toBe('abc');
  });
});
