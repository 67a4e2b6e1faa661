/**
 * The tar format, just enough of it: POSIX ustar headers, with pax extended headers for names
 * and link targets that do not fit. Written deterministically (see packContext); read back
 * strictly (see extractContext).
 */

export const BLOCK = 512;

export type EntryType = 'file' | 'directory' | 'symlink';

/** One archive member as written or read. */
export interface TarEntry {
  /** "/"-separated path relative to the archive root; no trailing "/" (also for directories). */
  path: string;
  type: EntryType;
  /** Permission bits. */
  mode: number;
  /** Content length for files, 0 otherwise. */
  size: number;
  /** Symlink target. */
  linkTarget?: string;
}

const TYPE_FLAGS: Record<EntryType, string> = { file: '0', directory: '5', symlink: '2' };
const USTAR_NAME_BYTES = 100;
const USTAR_LINK_BYTES = 100;
/** 11 octal digits: the largest size a ustar header holds. */
const MAX_OCTAL_SIZE = 0o77777777777;

/**
 * Header block(s) of `entry`: a pax extended header first when the path or link target is too
 * long for ustar. Owner, group and times are fixed (0, empty, epoch) so the same tree always
 * gives the same bytes.
 */
export function encodeHeader(entry: TarEntry): Buffer {
  const name = entry.type === 'directory' ? `${entry.path}/` : entry.path;
  const link = entry.linkTarget ?? '';
  const pax: Record<string, string> = {};
  if (Buffer.byteLength(name) > USTAR_NAME_BYTES) pax.path = name;
  if (Buffer.byteLength(link) > USTAR_LINK_BYTES) pax.linkpath = link;
  if (entry.size > MAX_OCTAL_SIZE) pax.size = String(entry.size);
  const main = ustarBlock({
    name: pax.path ? truncate(name, USTAR_NAME_BYTES) : name,
    mode: entry.mode,
    size: entry.size > MAX_OCTAL_SIZE ? 0 : entry.size,
    type: TYPE_FLAGS[entry.type],
    link: pax.linkpath ? truncate(link, USTAR_LINK_BYTES) : link,
  });
  if (Object.keys(pax).length === 0) return main;
  const records = Buffer.from(
    Object.keys(pax)
      .sort()
      .map((key) => paxRecord(key, pax[key]))
      .join(''),
  );
  const paxHeader = ustarBlock({
    name: truncate(`PaxHeaders/${entry.path}`, USTAR_NAME_BYTES),
    mode: 0o644,
    size: records.length,
    type: 'x',
    link: '',
  });
  return Buffer.concat([paxHeader, records, padding(records.length), main]);
}

/** Zero bytes that fill `size` bytes of content up to the next block. */
export function padding(size: number): Buffer {
  return Buffer.alloc((BLOCK - (size % BLOCK)) % BLOCK);
}

/** The end of an archive: two zero blocks. */
export const END_OF_ARCHIVE = Buffer.alloc(2 * BLOCK);

function ustarBlock(fields: { name: string; mode: number; size: number; type: string; link: string }): Buffer {
  const block = Buffer.alloc(BLOCK);
  block.write(fields.name, 0, USTAR_NAME_BYTES, 'utf8');
  writeOctal(block, 100, 8, fields.mode & 0o7777);
  writeOctal(block, 108, 8, 0); // uid
  writeOctal(block, 116, 8, 0); // gid
  writeOctal(block, 124, 12, fields.size);
  writeOctal(block, 136, 12, 0); // mtime
  block.write(fields.type, 156, 1, 'latin1');
  block.write(fields.link, 157, USTAR_LINK_BYTES, 'utf8');
  block.write('ustar\u000000', 257, 8, 'latin1');
  block.fill(' ', 148, 156);
  writeOctal(block, 148, 7, checksum(block));
  return block;
}

function writeOctal(block: Buffer, offset: number, length: number, value: number): void {
  block.write(`${value.toString(8).padStart(length - 1, '0')}\u0000`, offset, length, 'latin1');
}

function checksum(block: Buffer): number {
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : block[i];
  return sum;
}

/** `"%d key=value\n"`, where the length counts the whole record, its own digits included. */
function paxRecord(key: string, value: string): string {
  const body = ` ${key}=${value}\n`;
  const bodyBytes = Buffer.byteLength(body);
  let length = bodyBytes + String(bodyBytes).length;
  if (String(length).length + bodyBytes !== length) length = bodyBytes + String(length).length;
  return `${length}${body}`;
}

/** The longest prefix of `text` that fits in `bytes` UTF-8 bytes (ustar fallback names). */
function truncate(text: string, bytes: number): string {
  let out = '';
  for (const ch of text) {
    if (Buffer.byteLength(out + ch) > bytes) break;
    out += ch;
  }
  return out;
}

/** A header block as read, before pax records are applied. */
export interface RawHeader {
  name: string;
  mode: number;
  size: number;
  typeflag: string;
  linkname: string;
}

export class TarFormatError extends Error {}

/** Decodes one header block; null for a zero block (the end of the archive). */
export function decodeHeader(block: Buffer): RawHeader | null {
  if (block.every((byte) => byte === 0)) return null;
  const stored = parseOctal(block, 148, 8, 'checksum');
  if (stored !== checksum(block)) throw new TarFormatError('tar header checksum mismatch');
  const ustar = block.toString('latin1', 257, 262) === 'ustar';
  const prefix = ustar ? cString(block, 345, 155) : '';
  const name = cString(block, 0, 100);
  return {
    name: prefix ? `${prefix}/${name}` : name,
    mode: parseOctal(block, 100, 8, 'mode'),
    size: parseSize(block),
    typeflag: block.toString('latin1', 156, 157).replace('\u0000', '0'),
    linkname: cString(block, 157, 100),
  };
}

/** Parses pax extended header records (`"%d key=value\n"`). */
export function parsePaxRecords(data: Buffer): Record<string, string> {
  const records: Record<string, string> = {};
  let offset = 0;
  while (offset < data.length) {
    const space = data.indexOf(0x20, offset);
    const length = Number(data.toString('latin1', offset, space));
    if (space < 0 || !Number.isSafeInteger(length) || length <= 0 || offset + length > data.length) {
      throw new TarFormatError('malformed pax extended header');
    }
    const record = data.toString('utf8', space + 1, offset + length - 1);
    const equals = record.indexOf('=');
    if (equals <= 0) throw new TarFormatError('malformed pax extended header record');
    records[record.slice(0, equals)] = record.slice(equals + 1);
    offset += length;
  }
  return records;
}

function cString(block: Buffer, offset: number, length: number): string {
  const field = block.subarray(offset, offset + length);
  const end = field.indexOf(0);
  return field.toString('utf8', 0, end < 0 ? length : end);
}

function parseOctal(block: Buffer, offset: number, length: number, what: string): number {
  const text = block
    .toString('latin1', offset, offset + length)
    .replace(/[\0 ]+$/, '')
    .replace(/^[\0 ]+/, '');
  if (!/^[0-7]*$/.test(text)) throw new TarFormatError(`tar header has a malformed ${what}`);
  return text === '' ? 0 : parseInt(text, 8);
}

/** Sizes over 8 GiB use GNU's base-256 form (high bit of the first byte set). */
function parseSize(block: Buffer): number {
  if ((block[124] & 0x80) === 0) return parseOctal(block, 124, 12, 'size');
  let value = 0;
  for (let i = 125; i < 136; i++) value = value * 256 + block[i];
  if (!Number.isSafeInteger(value)) throw new TarFormatError('tar entry is too large');
  return value;
}
