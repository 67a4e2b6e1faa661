import { createHash } from 'node:crypto';
import {
  assembleImageIndex,
  DOCKER_MANIFEST,
  DOCKER_MANIFEST_LIST,
  InvalidImageIndexError,
  OCI_INDEX,
  OCI_MANIFEST,
  PlatformImage,
} from './image-index';

const d = (c: string) => `sha256:${c.repeat(64)}`;
const amd64: PlatformImage = {
  platform: { os: 'linux', architecture: 'amd64' },
  digest: d('a'),
  mediaType: OCI_MANIFEST,
  size: 1000,
};
const arm64: PlatformImage = {
  platform: { os: 'linux', architecture: 'arm64', variant: 'v8' },
  digest: d('b'),
  mediaType: OCI_MANIFEST,
  size: 2000,
};
const armv7: PlatformImage = {
  platform: { os: 'linux', architecture: 'arm' },
  digest: d('c'),
  mediaType: OCI_MANIFEST,
  size: 3000,
};
const docker = (i: PlatformImage): PlatformImage => ({ ...i, mediaType: DOCKER_MANIFEST });

describe('assembleImageIndex', () => {
  test('OCI index: exact bytes, entries in order, normalized platforms', () => {
    const out = assembleImageIndex([amd64, arm64, armv7]);
    const expected =
      `{"schemaVersion":2,"mediaType":"${OCI_INDEX}","manifests":[` +
      `{"mediaType":"${OCI_MANIFEST}","digest":"${d('a')}","size":1000,"platform":{"architecture":"amd64","os":"linux"}},` +
      `{"mediaType":"${OCI_MANIFEST}","digest":"${d('b')}","size":2000,"platform":{"architecture":"arm64","os":"linux"}},` +
      `{"mediaType":"${OCI_MANIFEST}","digest":"${d('c')}","size":3000,"platform":{"architecture":"arm","os":"linux","variant":"v7"}}` +
      `]}`;
    expect(out.body.toString('utf8')).toBe(expected);
    expect(out.mediaType).toBe(OCI_INDEX);
    expect(out.size).toBe(Buffer.byteLength(expected));
    expect(out.digest).toBe(`sha256:${createHash('sha256').update(expected).digest('hex')}`);
  });

  test('Docker manifest list: exact bytes', () => {
    const out = assembleImageIndex([docker(amd64), docker(armv7)], { format: 'docker' });
    expect(out.mediaType).toBe(DOCKER_MANIFEST_LIST);
    expect(out.body.toString('utf8')).toBe(
      `{"schemaVersion":2,"mediaType":"${DOCKER_MANIFEST_LIST}","manifests":[` +
        `{"mediaType":"${DOCKER_MANIFEST}","size":1000,"digest":"${d('a')}","platform":{"architecture":"amd64","os":"linux"}},` +
        `{"mediaType":"${DOCKER_MANIFEST}","size":3000,"digest":"${d('c')}","platform":{"architecture":"arm","os":"linux","variant":"v7"}}` +
        `]}`,
    );
  });

  test('keeps the given order', () => {
    const a = JSON.parse(assembleImageIndex([arm64, amd64]).body.toString());
    const b = JSON.parse(assembleImageIndex([amd64, arm64]).body.toString());
    expect(a.manifests.map((m: { digest: string }) => m.digest)).toEqual([d('b'), d('a')]);
    expect(b.manifests.map((m: { digest: string }) => m.digest)).toEqual([d('a'), d('b')]);
  });

  test('is deterministic', () => {
    const annotations = { 'org.opencontainers.image.revision': 'abc', 'org.opencontainers.image.created': 'now' };
    const one = assembleImageIndex([amd64, arm64], { annotations });
    const two = assembleImageIndex(
      [
        { ...amd64, platform: { os: 'Linux', architecture: 'x86_64' } },
        { ...arm64, platform: { os: 'linux', architecture: 'aarch64' } },
      ],
      { annotations: { 'org.opencontainers.image.created': 'now', 'org.opencontainers.image.revision': 'abc' } },
    );
    expect(two.body.equals(one.body)).toBe(true);
    expect(two.digest).toBe(one.digest);
  });

  test('annotations are written sorted by key, integer-like keys included', () => {
    const out = assembleImageIndex([amd64], {
      annotations: {
        'org.opencontainers.image.source': 'https://git.example/app',
        'org.opencontainers.image.created': '2024-01-01T00:00:00Z',
        'org.opencontainers.image.revision': 'deadbeef',
        '10': 'x',
        '9': 'y',
      },
    });
    const text = out.body.toString('utf8');
    expect(
      text.endsWith(
        `,"annotations":{"10":"x","9":"y","org.opencontainers.image.created":"2024-01-01T00:00:00Z",` +
          `"org.opencontainers.image.revision":"deadbeef","org.opencontainers.image.source":"https://git.example/app"}}`,
      ),
    ).toBe(true);
    expect(JSON.parse(text).annotations['org.opencontainers.image.revision']).toBe('deadbeef');
  });

  test('annotation values are JSON-escaped', () => {
    const out = assembleImageIndex([amd64], { annotations: { 'a"b': 'line\n"quoted"' } });
    expect(JSON.parse(out.body.toString()).annotations).toEqual({ 'a"b': 'line\n"quoted"' });
  });

  test('empty annotations are omitted', () => {
    expect(assembleImageIndex([amd64], { annotations: {} }).digest).toBe(assembleImageIndex([amd64]).digest);
  });

  test('an OCI index may list Docker v2 manifests', () => {
    const parsed = JSON.parse(assembleImageIndex([docker(amd64), arm64]).body.toString());
    expect(parsed.manifests.map((m: { mediaType: string }) => m.mediaType)).toEqual([DOCKER_MANIFEST, OCI_MANIFEST]);
  });

  test('the body is valid JSON with the documented shape', () => {
    const parsed = JSON.parse(assembleImageIndex([amd64, armv7], { annotations: { k: 'v' } }).body.toString());
    expect(parsed).toEqual({
      schemaVersion: 2,
      mediaType: OCI_INDEX,
      manifests: [
        { mediaType: OCI_MANIFEST, digest: d('a'), size: 1000, platform: { architecture: 'amd64', os: 'linux' } },
        {
          mediaType: OCI_MANIFEST,
          digest: d('c'),
          size: 3000,
          platform: { architecture: 'arm', os: 'linux', variant: 'v7' },
        },
      ],
      annotations: { k: 'v' },
    });
  });

  test.each<[string, PlatformImage[], Parameters<typeof assembleImageIndex>[1], RegExp]>([
    ['no images', [], undefined, /at least one platform image/],
    [
      'duplicate platforms',
      [amd64, arm64, { ...amd64, digest: d('d') }],
      undefined,
      /images\[2\]: duplicate platform linux\/amd64 \(already images\[0\]\)/,
    ],
    [
      'duplicates after normalization',
      [arm64, { ...arm64, platform: { os: 'linux', architecture: 'aarch64' }, digest: d('d') }],
      undefined,
      /duplicate platform linux\/arm64/,
    ],
    [
      'arm and arm/v7',
      [armv7, { ...armv7, platform: { os: 'linux', architecture: 'arm', variant: 'v7' } }],
      undefined,
      /duplicate platform linux\/arm\/v7/,
    ],
    [
      'an invalid platform',
      [{ ...amd64, platform: { os: 'linux', architecture: 'x86' } }],
      undefined,
      /images\[0\]: invalid platform "linux\/x86": unknown architecture/,
    ],
    [
      'a windows platform',
      [{ ...amd64, platform: { os: 'windows', architecture: 'amd64' } }],
      undefined,
      /linux images only/,
    ],
    [
      'a short digest',
      [{ ...amd64, digest: 'sha256:abc' }],
      undefined,
      /images\[0\] \(linux\/amd64\): sha256 digest must be 64 lowercase hex digits/,
    ],
    ['a digest without algorithm', [{ ...amd64, digest: 'a'.repeat(64) }], undefined, /must be algorithm:hex/],
    ['an uppercase digest', [{ ...amd64, digest: 'sha256:' + 'A'.repeat(64) }], undefined, /lowercase hex/],
    ['an empty digest', [{ ...amd64, digest: '' }], undefined, /digest is empty/],
    ['size 0', [{ ...amd64, size: 0 }], undefined, /size must be a positive integer, got 0/],
    ['a negative size', [{ ...amd64, size: -1 }], undefined, /size must be a positive integer/],
    ['a fractional size', [{ ...amd64, size: 1.5 }], undefined, /size must be a positive integer/],
    ['a NaN size', [{ ...amd64, size: NaN }], undefined, /size must be a positive integer/],
    ['a string size', [{ ...amd64, size: '10' as unknown as number }], undefined, /size must be a positive integer/],
    ['an unsafe size', [{ ...amd64, size: 2 ** 53 }], undefined, /size must be a positive integer/],
    [
      'an index as a child',
      [{ ...amd64, mediaType: OCI_INDEX }],
      undefined,
      /OCI image index cannot list a manifest of media type/,
    ],
    [
      'an unknown media type',
      [{ ...amd64, mediaType: 'application/json' }],
      undefined,
      /cannot list a manifest of media type "application\/json"/,
    ],
    [
      'OCI children in a Docker list',
      [docker(amd64), arm64],
      { format: 'docker' },
      /images\[1\] \(linux\/arm64\): a Docker manifest list cannot list a manifest of media type "application\/vnd\.oci\.image\.manifest\.v1\+json".*push the images in Docker format/,
    ],
    [
      'annotations on a Docker list',
      [docker(amd64)],
      { format: 'docker', annotations: { a: 'b' } },
      /Docker manifest list has no annotations/,
    ],
    ['an empty annotation key', [amd64], { annotations: { '': 'b' } }, /annotation keys must not be empty/],
    [
      'a non-string annotation',
      [amd64],
      { annotations: { a: 1 as unknown as string } },
      /annotation "a" must be a string, got number/,
    ],
    [
      'annotations that are not an object',
      [amd64],
      { annotations: 'x' as unknown as Record<string, string> },
      /annotations must be an object/,
    ],
    ['an unknown format', [amd64], { format: 'v1' as 'oci' }, /unknown index format "v1"/],
  ])('rejects %s', (_name, images, opts, message) => {
    expect(() => assembleImageIndex(images, opts)).toThrow(InvalidImageIndexError);
    expect(() => assembleImageIndex(images, opts)).toThrow(message);
  });
});
