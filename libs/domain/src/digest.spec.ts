import { createHash } from 'node:crypto';
import { digestProblem, isDigest, sha256Digest } from './digest';

describe('sha256Digest', () => {
  test.each<[Buffer | string, string]>([
    ['', 'sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855'],
    ['abc', 'sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad'],
    [Buffer.from('abc'), 'sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad'],
  ])('%j -> %s', (data, expected) => {
    expect(sha256Digest(data)).toBe(expected);
  });

  test('hashes strings as UTF-8', () => {
    expect(sha256Digest('é')).toBe(`sha256:${createHash('sha256').update(Buffer.from('é', 'utf8')).digest('hex')}`);
  });

  test('its output is a digest', () => {
    expect(isDigest(sha256Digest('x'))).toBe(true);
  });
});

describe('isDigest / digestProblem', () => {
  test.each<[unknown, RegExp | undefined]>([
    ['sha256:' + '0123456789abcdef'.repeat(4), undefined],
    ['sha384:' + 'a'.repeat(96), undefined],
    ['sha512:' + 'a'.repeat(128), undefined],
    ['', /digest is empty/],
    [undefined, /digest is empty/],
    [42, /digest is empty/],
    ['a'.repeat(64), /must be algorithm:hex/],
    ['sha256:', /must be algorithm:hex/],
    [':' + 'a'.repeat(64), /must be algorithm:hex/],
    ['sha256:' + 'a'.repeat(64) + '\n', /must be algorithm:hex/],
    [' sha256:' + 'a'.repeat(64), /must be algorithm:hex/],
    ['SHA256:' + 'a'.repeat(64), /must be algorithm:hex/],
    ['sha256:' + 'a'.repeat(63), /sha256 digest must be 64 lowercase hex digits/],
    ['sha256:' + 'a'.repeat(65), /64 lowercase hex digits/],
    ['sha256:' + 'A'.repeat(64), /64 lowercase hex digits/],
    ['sha256:' + 'z'.repeat(64), /64 lowercase hex digits/],
    ['sha512:' + 'a'.repeat(64), /sha512 digest must be 128 lowercase hex digits/],
    ['md5:' + 'a'.repeat(32), /unsupported digest algorithm "md5"; supported: sha256, sha384, sha512/],
    ['sha256+b64u:' + 'a'.repeat(43), /unsupported digest algorithm "sha256\+b64u"/],
  ])('%j', (s, problem) => {
    expect(isDigest(s as string)).toBe(problem === undefined);
    if (problem === undefined) expect(digestProblem(s as string)).toBeUndefined();
    else expect(digestProblem(s as string)).toMatch(problem);
  });
});
