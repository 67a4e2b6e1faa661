import type { Redis } from 'ioredis';
import { LOG_STREAM_MAX_LINES } from './agent-protocol';
import { logStreamKey } from './names';

/** Log streams expire a week after their last line; the coordinator archives them in PostgreSQL. */
const LOG_STREAM_TTL_SECONDS = 7 * 24 * 60 * 60;

/** Appends lines to a platform's log stream, capped (approximately) at LOG_STREAM_MAX_LINES. */
export async function appendLogLines(
  redis: Redis,
  prefix: string,
  buildId: string,
  platform: string,
  lines: string[],
): Promise<void> {
  if (lines.length === 0) return;
  const key = logStreamKey(prefix, buildId, platform);
  const pipeline = redis.pipeline();
  for (const line of lines) pipeline.xadd(key, 'MAXLEN', '~', LOG_STREAM_MAX_LINES, '*', 'l', line);
  pipeline.expire(key, LOG_STREAM_TTL_SECONDS);
  await pipeline.exec();
}

export interface LogEntry {
  id: string;
  line: string;
}

/** Lines after `afterId` (exclusive), oldest first. */
export async function readLogEntries(
  redis: Redis,
  prefix: string,
  buildId: string,
  platform: string,
  afterId = '-',
): Promise<LogEntry[]> {
  const start = afterId === '-' ? '-' : `(${afterId}`;
  const entries = await redis.xrange(logStreamKey(prefix, buildId, platform), start, '+');
  return entries.map(([id, fields]) => ({ id, line: fields[fields.indexOf('l') + 1] ?? '' }));
}

export async function readLogText(redis: Redis, prefix: string, buildId: string, platform: string): Promise<string> {
  const entries = await readLogEntries(redis, prefix, buildId, platform);
  return entries.map((entry) => `${entry.line}\n`).join('');
}
