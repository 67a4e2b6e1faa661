import {
  isDigest,
  isLoopbackRegistry,
  isTag,
  normalizeRegistry,
  normalizeRepositoryRef,
  parseImageReference,
} from './reference';

const DIGEST = `sha256:${'a'.repeat(64)}`;

describe('registry hosts', () => {
  it('normalizes case, URLs and Docker Hub aliases', () => {
    expect(normalizeRegistry('Registry.Example.com:5000')).toBe('registry.example.com:5000');
    expect(normalizeRegistry('https://index.docker.io/v1/')).toBe('registry-1.docker.io');
    expect(normalizeRegistry('docker.io')).toBe('registry-1.docker.io');
    expect(normalizeRegistry('[::1]:5000')).toBe('[::1]:5000');
    expect(() => normalizeRegistry('bad host')).toThrow('invalid registry host');
    expect(() => normalizeRegistry('')).toThrow('invalid registry host');
  });

  it('treats 127.0.0.0/8, localhost and ::1 as loopback, and nothing else', () => {
    for (const host of [
      '127.0.0.1:5000',
      '127.1.2.3',
      'localhost',
      'LOCALHOST:80',
      '[::1]:5000',
      '[0:0:0:0:0:0:0:1]',
    ]) {
      expect([host, isLoopbackRegistry(host)]).toEqual([host, true]);
    }
    for (const host of [
      '128.0.0.1',
      '10.0.0.1:5000',
      'localhost.example.com',
      '[::2]',
      'docker.io',
      '127.example.com',
    ]) {
      expect([host, isLoopbackRegistry(host)]).toEqual([host, false]);
    }
  });
});

describe('repository names and references', () => {
  it('validates repository names and prefixes Docker Hub official images with library/', () => {
    expect(normalizeRepositoryRef({ registry: 'docker.io', repository: 'alpine' })).toEqual({
      registry: 'registry-1.docker.io',
      repository: 'library/alpine',
    });
    expect(normalizeRepositoryRef({ registry: '127.0.0.1:5000', repository: 'app' }).repository).toBe('app');
    expect(normalizeRepositoryRef({ registry: 'r', repository: 'a/b-c/d__e.f' }).repository).toBe('a/b-c/d__e.f');
    for (const bad of ['Team/app', 'team//app', '../etc', 'team/app/', 'team/app?x', '']) {
      expect(() => normalizeRepositoryRef({ registry: 'r', repository: bad })).toThrow('invalid repository name');
    }
  });

  it('tells tags from digests', () => {
    expect(isDigest(DIGEST)).toBe(true);
    expect(isTag(DIGEST)).toBe(false);
    expect(isTag('1.2.3-rc_1')).toBe(true);
    expect(isTag('.hidden')).toBe(false);
    expect(isTag('a'.repeat(129))).toBe(false);
    expect(isDigest('latest')).toBe(false);
  });

  it('parses image references like Docker does', () => {
    expect(parseImageReference('127.0.0.1:5000/team/app:1.2')).toEqual({
      registry: '127.0.0.1:5000',
      repository: 'team/app',
      tag: '1.2',
    });
    expect(parseImageReference(`localhost/app@${DIGEST}`)).toEqual({
      registry: 'localhost',
      repository: 'app',
      digest: DIGEST,
    });
    expect(parseImageReference(`ghcr.io/o/r:v1@${DIGEST}`)).toEqual({
      registry: 'ghcr.io',
      repository: 'o/r',
      tag: 'v1',
      digest: DIGEST,
    });
    expect(parseImageReference('busybox')).toEqual({ registry: 'registry-1.docker.io', repository: 'library/busybox' });
    expect(parseImageReference('team/app:x')).toEqual({
      registry: 'registry-1.docker.io',
      repository: 'team/app',
      tag: 'x',
    });
    expect(() => parseImageReference('r.io/app:bad tag')).toThrow('invalid tag');
    expect(() => parseImageReference('r.io/app@sha256:short')).toThrow('invalid digest');
  });
});
