import { SseParser, type SseEvent } from './sse';

function parse(chunks: string[]): SseEvent[] {
  const events: SseEvent[] = [];
  const parser = new SseParser((event) => events.push(event));
  chunks.forEach((chunk) => parser.push(chunk));
  return events;
}

test('events split anywhere across chunks, with CRLF, comments and multi-line data', () => {
  const stream = ': keep-alive\r\nid: a|1-0\r\nevent: line\r\ndata: {"line":"x"}\r\n\r\ndata: one\ndata:two\n\n';
  const whole = parse([stream]);
  expect(whole).toEqual([
    { event: 'line', data: '{"line":"x"}', id: 'a|1-0' },
    { event: 'message', data: 'one\ntwo', id: 'a|1-0' },
  ]);
  // Byte by byte, including between "\r" and "\n".
  expect(parse(stream.split(''))).toEqual(whole);
});

test('an event is dispatched only at its blank line, and one without data is dropped', () => {
  expect(parse(['event: end\ndata: {}\n'])).toEqual([]);
  expect(parse(['event: status\n\n', 'event: end\ndata: {}\n\n'])).toEqual([{ event: 'end', data: '{}' }]);
});
