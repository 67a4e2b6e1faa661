import { Logger } from '@nestjs/common';
import { setTimeout as delay } from 'node:timers/promises';
import type { Response } from 'express';
import type { Redis } from 'ioredis';
import type { BuildWithPlatforms, PlatformBuild } from '@farm/db';
import { logStreamKey } from '@farm/queue';

/** The build's row is read this often for platform status changes and the build's end. */
export const STATUS_POLL_MS = 500;
/** An idle stream gets a comment this often, so proxies and load balancers keep it open. */
const KEEPALIVE_MS = 15_000;
/**
 * Longest wait for a line before checking whether the build is over (Redis rounds it up to its
 * next timeout check, at most 1000/hz ms later).
 */
const LINE_WAIT_MS = 100;
/** Largest sequence number of a Redis stream id: `${ms}-${MAX_SEQ}` is the last id of millisecond ms. */
const MAX_SEQ = '18446744073709551615';
const ENDED = new Set<string>(['succeeded', 'failed', 'canceled']);

/**
 * Where a line sits in the one order every follower delivers lines in: by the millisecond of its
 * Redis stream id, then by the platform's position in the build, then by the id's sequence.
 * Lines archived in PostgreSQL (their stream is gone) get ids `0-<line number>`.
 *
 * One total order lets a single SSE id (`<platform>|<stream id>`) say where a client is in
 * every platform's log at once: a reconnect resumes each platform after that point.
 */
export interface LinePosition {
  ms: number;
  platform: number;
  seq: number;
}

export function comparePositions(a: LinePosition, b: LinePosition): number {
  return a.ms - b.ms || a.platform - b.platform || a.seq - b.seq;
}

/**
 * Reads a `Last-Event-ID` (`<platform>|<ms>-<seq>`) against the build's platforms, in their
 * order. Undefined (start from the beginning) for anything this api did not hand out.
 */
export function parseLastEventId(value: string | undefined, platforms: readonly string[]): LinePosition | undefined {
  const match = /^(.+)\|(\d{1,15})-(\d{1,15})$/.exec(value ?? '');
  const platform = match ? platforms.indexOf(match[1]) : -1;
  if (!match || platform < 0) return undefined;
  return { ms: Number(match[2]), platform, seq: Number(match[3]) };
}

/**
 * The XREAD id (exclusive) from which the platform at `platform` (its position in the build)
 * continues after `after`: every line whose position is greater, and no other.
 */
export function resumeCursor(platform: number, after: LinePosition | undefined): string {
  if (!after) return '0-0';
  if (platform === after.platform) return `${after.ms}-${after.seq}`;
  if (platform < after.platform) return `${after.ms}-${MAX_SEQ}`;
  return after.ms === 0 ? '0-0' : `${after.ms - 1}-${MAX_SEQ}`;
}

/** One Server-Sent Event; `data` is JSON, which never contains a line break. */
export function formatSseEvent(event: string, data: unknown, id?: string): string {
  return `${id === undefined ? '' : `id: ${id}\n`}event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
}

/** The lines of an archived log (`line\n` each, as the coordinator stores it). */
export function archivedLines(log: string): string[] {
  const lines = log.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  return lines;
}

interface LogLine {
  position: LinePosition;
  platform: string;
  /** The SSE id: `<platform>|<stream id>`. */
  id: string;
  line: string;
}

type StreamReply = [key: string, entries: [id: string, fields: string[]][]][] | null;

export interface LogFollowerOptions {
  /** A connection of this follower's own: it blocks on XREAD, and stop() disconnects it. */
  redis: Redis;
  prefix: string;
  build: BuildWithPlatforms;
  /** The platforms to follow (validated, a subset of the build's). */
  platforms: string[];
  lastEventId?: string;
  /** The build as it is now; null once it is gone. */
  reload(): Promise<BuildWithPlatforms | null>;
  response: Response;
}

/**
 * Streams a build's log to one client as Server-Sent Events (REST v1 `GET /v1/builds/{id}/logs
 * ?follow=true`): the lines already there, then new ones as agents add them (XREAD BLOCK on the
 * follower's own connection), platform status changes, and `end` once the build ended.
 *
 * Lines go out in {@link LinePosition} order, and only once no line can still come before them:
 * Redis gives every later XADD an id of the current millisecond or later, so after reading
 * the server's TIME and then everything added until then, the lines of earlier milliseconds
 * are final. This holds a line back for about a millisecond at most.
 */
export class LogFollower {
  private readonly logger = new Logger(LogFollower.name);
  /** Platforms whose lines come from their Redis stream, with the id read up to. */
  private readonly cursors = new Map<string, string>();
  private readonly positions: Map<string, number>;
  private readonly after: LinePosition | undefined;
  private readonly statuses = new Map<string, string>();
  private pending: LogLine[] = [];
  private ended = false;
  private lastWrite = Date.now();
  /** The build ended (or is gone): no more lines to wait for. */
  private buildOver = false;
  /** Cuts waits short when the stream ends, so no timer outlives it. */
  private readonly abort = new AbortController();

  constructor(private readonly options: LogFollowerOptions) {
    this.positions = new Map(options.build.platforms.map((p, i) => [p.platform, i]));
    this.after = parseLastEventId(options.lastEventId, [...this.positions.keys()]);
  }

  /**
   * Decides where each platform's lines come from: the Redis stream, or the archive in
   * PostgreSQL once the stream is gone. Throws when Redis cannot be reached (nothing sent yet).
   */
  async prepare(): Promise<void> {
    const { build, platforms, prefix } = this.options;
    const rows = platforms.map((name) => this.row(build, name));
    const exists = await Promise.all(
      rows.map((row) => this.options.redis.exists(logStreamKey(prefix, build.id, row.platform))),
    );
    rows.forEach((row, i) => {
      const index = this.positions.get(row.platform) ?? 0;
      if (exists[i] || !ENDED.has(row.status) || row.log === null) {
        this.cursors.set(row.platform, resumeCursor(index, this.after));
        return;
      }
      archivedLines(row.log).forEach((line, n) => {
        const position = { ms: 0, platform: index, seq: n + 1 };
        if (this.after && comparePositions(position, this.after) <= 0) return;
        this.pending.push({ position, platform: row.platform, id: `${row.platform}|0-${n + 1}`, line });
      });
    });
  }

  /** Streams until the build ends, the client goes away or stop() is called. Never throws. */
  async run(): Promise<void> {
    const { response } = this.options;
    if (this.ended) return;
    try {
      response.status(200);
      response.set({
        'Content-Type': 'text/event-stream; charset=utf-8',
        'Cache-Control': 'no-cache, no-transform',
        // nginx would otherwise buffer the stream.
        'X-Accel-Buffering': 'no',
      });
      response.flushHeaders();
      await this.write(this.statusEvents(this.options.build));
      // Apart, so that a slow database never holds lines back.
      const [, build] = await Promise.all([this.followLines(), this.watchBuild()]);
      if (!build || this.ended) return;
      // Every platform ended, so every line is in Redis: the rest goes out, then the outcome.
      await this.read(null);
      await this.deliver(Infinity);
      await this.write(
        this.statusEvents(build) + formatSseEvent('end', { status: build.status, digest: build.digest }),
      );
    } catch (error) {
      if (!this.ended) this.logger.warn(`log stream of build ${this.options.build.id} broke off: ${String(error)}`);
    } finally {
      this.stop();
    }
  }

  /** The stream ended, or the client went away. */
  get stopped(): boolean {
    return this.ended;
  }

  /** Ends the stream and releases its Redis connection; safe to call more than once. */
  stop(): void {
    if (this.ended) return;
    this.ended = true;
    this.abort.abort();
    this.options.redis.disconnect();
    // Before run() nothing was sent: an error answer may still go out instead.
    if (this.options.response.headersSent) this.options.response.end();
  }

  /** Sends lines as agents add them, until the build is over. */
  private async followLines(): Promise<void> {
    let block: number | null = null;
    while (!this.ended && !this.buildOver) {
      await this.deliver(await this.read(block));
      if (this.pending.length > 0) {
        // Lines held back wait for the server's next millisecond. Not with XREAD BLOCK 1:
        // Redis checks blocking timeouts only every 1000/hz ms (100 ms by default).
        await this.sleep(1);
        block = null;
      } else {
        block = LINE_WAIT_MS;
      }
    }
  }

  /**
   * Reads the build every STATUS_POLL_MS and sends its status changes. Resolves with the build
   * once it ended, or null when it is gone or the stream stopped.
   */
  private async watchBuild(): Promise<BuildWithPlatforms | null> {
    let build: BuildWithPlatforms | null = this.options.build;
    try {
      while (!ENDED.has(build.status)) {
        await this.sleep(STATUS_POLL_MS);
        if (this.ended) return null;
        build = await this.options.reload();
        if (!build) return null;
        if (!ENDED.has(build.status)) await this.write(this.statusEvents(build));
        if (Date.now() - this.lastWrite >= KEEPALIVE_MS) await this.write(': keep-alive\n\n');
      }
      return build;
    } finally {
      this.buildOver = true;
    }
  }

  /**
   * Waits up to `block` ms for a new line (not at all when null), then reads the server's
   * TIME and every line added until then. Returns the millisecond before which lines are final
   * (every line is, when there is only one stream).
   */
  private async read(block: number | null): Promise<number> {
    if (this.cursors.size === 0) {
      if (block !== null) await this.sleep(block);
      return Infinity;
    }
    const { redis, prefix, build } = this.options;
    const names = [...this.cursors.keys()];
    const keys = names.map((name) => logStreamKey(prefix, build.id, name));
    const streams = () => [...keys, ...names.map((name) => this.cursors.get(name) ?? '0-0')];
    // The lines of one stream are in order as they come: only several need the server's TIME.
    const interleaved = names.length > 1;
    const pipeline = redis.pipeline();
    // Only a wake-up call: the XREAD after it reads what it returns again, and more.
    if (block !== null) pipeline.xread('COUNT', 1, 'BLOCK', block, 'STREAMS', ...streams());
    if (interleaved) pipeline.time();
    pipeline.xread('STREAMS', ...streams());
    const results = (await pipeline.exec()) ?? [];
    for (const [error] of results) if (error) throw error;
    const reply = results[results.length - 1][1] as StreamReply;
    for (const [key, entries] of reply ?? []) {
      const name = names[keys.indexOf(key)];
      const platform = this.positions.get(name) ?? 0;
      for (const [id, fields] of entries) {
        const [ms, seq] = id.split('-').map(Number);
        const line = fields[fields.indexOf('l') + 1] ?? '';
        this.pending.push({ position: { ms, platform, seq }, platform: name, id: `${name}|${id}`, line });
      }
      if (entries.length > 0) this.cursors.set(name, entries[entries.length - 1][0]);
    }
    if (!interleaved) return Infinity;
    const [seconds, micros] = results[results.length - 2][1] as [string, string];
    return Number(seconds) * 1000 + Math.floor(Number(micros) / 1000);
  }

  /** Sends the pending lines of milliseconds before `watermark`, in order. */
  private async deliver(watermark: number): Promise<void> {
    this.pending.sort((a, b) => comparePositions(a.position, b.position));
    const ready = this.pending.findIndex((line) => line.position.ms >= watermark);
    const lines = ready < 0 ? this.pending : this.pending.slice(0, ready);
    this.pending = ready < 0 ? [] : this.pending.slice(ready);
    await this.write(lines.map(({ platform, id, line }) => formatSseEvent('line', { platform, line }, id)).join(''));
  }

  /** A `status` event for each followed platform whose status, agent or emulation changed. */
  private statusEvents(build: BuildWithPlatforms): string {
    let events = '';
    for (const name of this.options.platforms) {
      const { status, agent, emulated } = this.row(build, name);
      const key = JSON.stringify([status, agent, emulated]);
      if (this.statuses.get(name) === key) continue;
      this.statuses.set(name, key);
      events += formatSseEvent('status', { platform: name, status, agent, emulated });
    }
    return events;
  }

  private row(build: BuildWithPlatforms, name: string): PlatformBuild {
    const row = build.platforms.find((p) => p.platform === name);
    if (!row) throw new Error(`build ${build.id} has no platform ${name}`);
    return row;
  }

  /** Writes unless stopped; waits while the client's socket buffer is full. */
  private async write(text: string): Promise<void> {
    const { response } = this.options;
    if (!text || this.ended) return;
    this.lastWrite = Date.now();
    if (response.write(text)) return;
    await new Promise<void>((resolve) => {
      const done = () => {
        response.off('drain', done);
        response.off('close', done);
        resolve();
      };
      response.on('drain', done);
      response.on('close', done);
    });
  }

  /** A wait that stop() cuts short. */
  private sleep(ms: number): Promise<void> {
    return delay(ms, undefined, { signal: this.abort.signal }).catch(() => undefined);
  }
}
