import { Writable } from 'node:stream';

/**
 * The small files of a LIST_LAYOUT output, by path. The output is a sequence of headers
 * `file PATH SIZE\n` (followed by SIZE bytes of content) and `large PATH SIZE\n` (no content).
 */
export function parseLayoutListing(output: Buffer): Map<string, Buffer> {
  const files = new Map<string, Buffer>();
  let at = 0;
  while (at < output.length) {
    const end = output.indexOf(0x0a, at);
    const header = output.subarray(at, end < 0 ? output.length : end).toString('utf8');
    const match = /^(file|large) (\S+) (\d+)$/.exec(header);
    if (end < 0 || !match) throw new Error(`unexpected image listing from the host: ${JSON.stringify(header)}`);
    at = end + 1;
    if (match[1] === 'file') {
      const size = Number(match[3]);
      if (at + size > output.length) throw new Error('the image listing from the host is truncated');
      files.set(match[2] as string, output.subarray(at, at + size));
      at += size;
    }
  }
  return files;
}

/** A Writable that keeps what is written to it, failing beyond `limit` bytes. */
export class Collector extends Writable {
  private readonly chunks: Buffer[] = [];
  private size = 0;

  constructor(private readonly limit: number) {
    super();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, done: (error?: Error) => void): void {
    this.size += chunk.length;
    if (this.size > this.limit) return done(new Error(`more than ${this.limit} bytes of output`));
    this.chunks.push(chunk);
    done();
  }

  content(): Buffer {
    return Buffer.concat(this.chunks);
  }
}
