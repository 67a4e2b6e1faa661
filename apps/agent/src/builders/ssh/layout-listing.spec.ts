import { finished } from 'node:stream/promises';
import { Collector, parseLayoutListing } from './layout-listing';

describe('parseLayoutListing', () => {
  test('keeps the small files, binary content included, and skips the large ones', () => {
    const binary = Buffer.from([0, 10, 255, 10]);
    const output = Buffer.concat([
      Buffer.from('file index.json 8\n{"a":1}\n'),
      Buffer.from('large blobs/sha256/aa 999999\n'),
      Buffer.from(`file blobs/sha256/bb ${binary.length}\n`),
      binary,
      Buffer.from('file blobs/sha256/cc 0\n'),
    ]);
    const files = parseLayoutListing(output);
    expect([...files.keys()]).toEqual(['index.json', 'blobs/sha256/bb', 'blobs/sha256/cc']);
    expect(files.get('index.json')?.toString()).toBe('{"a":1}\n');
    expect(files.get('blobs/sha256/bb')).toEqual(binary);
    expect(files.get('blobs/sha256/cc')).toEqual(Buffer.alloc(0));
  });

  test.each<[string, RegExp]>([
    ['file index.json 10\n{}', /truncated/],
    ['what is this\n', /unexpected image listing/],
    ['file index.json 2', /unexpected image listing/],
  ])('refuses %j', (output, message) => {
    expect(() => parseLayoutListing(Buffer.from(output))).toThrow(message);
  });
});

describe('Collector', () => {
  test('collects up to its limit', async () => {
    const collector = new Collector(5);
    collector.end('abcde');
    await finished(collector);
    expect(collector.content().toString()).toBe('abcde');
  });

  test('fails beyond its limit', async () => {
    const collector = new Collector(3);
    collector.end('abcd');
    await expect(finished(collector)).rejects.toThrow(/more than 3 bytes/);
  });
});
