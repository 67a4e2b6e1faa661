import {
  archivedLines,
  comparePositions,
  formatSseEvent,
  parseLastEventId,
  resumeCursor,
  type LinePosition,
} from './log-follower';

const PLATFORMS = ['linux/amd64', 'linux/arm64', 'linux/arm/v7'];

describe('SSE events', () => {
  test('carry JSON data on one line, an optional id and a blank line after', () => {
    expect(formatSseEvent('line', { platform: 'linux/arm64', line: 'a\nb\r"c"' }, 'linux/arm64|5-1')).toBe(
      'id: linux/arm64|5-1\nevent: line\ndata: {"platform":"linux/arm64","line":"a\\nb\\r\\"c\\""}\n\n',
    );
    expect(formatSseEvent('end', { status: 'failed', digest: null })).toBe(
      'event: end\ndata: {"status":"failed","digest":null}\n\n',
    );
  });
});

describe('Last-Event-ID', () => {
  test('names a platform of the build and a stream id', () => {
    expect(parseLastEventId('linux/arm64|1700000000123-4', PLATFORMS)).toEqual({
      ms: 1700000000123,
      platform: 1,
      seq: 4,
    });
    expect(parseLastEventId('linux/arm/v7|0-12', PLATFORMS)).toEqual({ ms: 0, platform: 2, seq: 12 });
  });

  test.each([undefined, '', 'linux/s390x|1-0', 'linux/amd64|1', 'linux/amd64|-1-0', 'linux/amd64|1-0 ', '|1-0'])(
    'anything else (%p) starts from the beginning',
    (value) => expect(parseLastEventId(value, PLATFORMS)).toBeUndefined(),
  );
});

describe('one order for the lines of every platform', () => {
  const line = (ms: number, platform: number, seq: number): LinePosition => ({ ms, platform, seq });

  test('by millisecond, then platform, then sequence', () => {
    const lines = [line(2, 0, 0), line(1, 1, 0), line(1, 0, 7), line(1, 0, 3), line(0, 1, 1), line(0, 0, 2)];
    expect(lines.sort(comparePositions)).toEqual([
      line(0, 0, 2),
      line(0, 1, 1),
      line(1, 0, 3),
      line(1, 0, 7),
      line(1, 1, 0),
      line(2, 0, 0),
    ]);
  });

  test('a resumed platform continues with exactly the lines ordered after the last one sent', () => {
    // Stream ids as XREAD compares them: exclusive cursor, then every greater id.
    const parse = (id: string) => id.split('-').map(BigInt) as [bigint, bigint];
    const greater = (id: string, cursor: string) => {
      const [a, b] = [parse(id), parse(cursor)];
      return a[0] > b[0] || (a[0] === b[0] && a[1] > b[1]);
    };
    const after = line(1000, 1, 5);
    const candidates = [999, 1000, 1001].flatMap((ms) => [0, 5, 6, 9].map((seq) => ({ ms, seq })));
    for (const platform of [0, 1, 2]) {
      const cursor = resumeCursor(platform, after);
      for (const { ms, seq } of candidates) {
        const expected = comparePositions(line(ms, platform, seq), after) > 0;
        expect([platform, ms, seq, greater(`${ms}-${seq}`, cursor)]).toEqual([platform, ms, seq, expected]);
      }
    }
    expect(resumeCursor(2, line(0, 1, 3))).toBe('0-0');
    expect(resumeCursor(0, undefined)).toBe('0-0');
  });
});

test('an archived log is read back line by line, blank lines included', () => {
  expect(archivedLines('STEP 1/2: FROM x\n\nSTEP 2/2: RUN y\n')).toEqual(['STEP 1/2: FROM x', '', 'STEP 2/2: RUN y']);
  expect(archivedLines('')).toEqual([]);
});
