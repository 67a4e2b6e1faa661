import type { PlatformProgressView } from '@farm/contract';
import type { BuildView, PlatformView } from './farm-client';
import { formatDuration } from './format';

/** Where the live view is written: process.stdout, or anything with the same shape. */
export interface Terminal {
  write(text: string): unknown;
  isTTY?: boolean;
  columns?: number;
}

const WAITING = new Set(['queued', 'unschedulable']);
const ENDED = new Set(['succeeded', 'failed', 'canceled']);
const STATUS_WIDTH = 'unschedulable'.length;
const CSI = '\x1b[';

const shortDigest = (digest: string | null) => (digest ? digest.slice(0, 19) : '');
const firstLine = (text: string | null) => (text ?? '').split('\n')[0];
const on = (p: PlatformView) => (p.agent ? `on ${p.agent}${p.emulated ? ' (emulated)' : ''}` : '');

/**
 * What a running platform's agent says it is doing: `checking out`, `building step 2 of 5`
 * (from buildah's STEP lines; `(stage 1 of 2)` added in multi-stage builds) or `pushing`.
 */
export function describeProgress(progress: PlatformProgressView | null | undefined): string {
  if (!progress) return '';
  if (progress.phase === 'preparing') return 'checking out';
  if (progress.phase === 'pushing') return 'pushing';
  if (!progress.step || !progress.steps) return 'building';
  const stage = progress.stage && progress.stages && progress.stages > 1;
  return `building step ${progress.step} of ${progress.steps}${stage ? ` (stage ${progress.stage} of ${progress.stages})` : ''}`;
}

/** What a platform is doing, in words: the agent, its step, why it waits, its digest or error. */
export function platformDetail(p: PlatformView): string {
  switch (p.status) {
    case 'queued':
      return 'waiting for an agent';
    case 'unschedulable':
      return p.statusReason ?? 'no online agent serves this platform';
    case 'running': {
      // Farms before progress existed send none (undefined).
      const doing = [describeProgress(p.progress), on(p)].filter(Boolean).join(' ');
      return `${doing}${p.attempts > 1 ? ` (attempt ${p.attempts})` : ''}`;
    }
    case 'succeeded':
      return [on(p), shortDigest(p.digest)].filter(Boolean).join('  ');
    case 'failed':
      return [on(p), firstLine(p.error)].filter(Boolean).join(': ');
    default:
      return '';
  }
}

/** The index's state, derived from the build: waiting, publishing, published, failed, canceled. */
export function indexState(build: BuildView): { status: string; detail: string } {
  if (build.status === 'succeeded') return { status: 'published', detail: shortDigest(build.digest) };
  if (build.status === 'failed') return { status: 'failed', detail: firstLine(build.error) };
  if (build.status === 'canceled') return { status: 'canceled', detail: '' };
  if (build.platforms.every((p) => p.status === 'succeeded')) return { status: 'publishing', detail: '' };
  return { status: 'waiting', detail: 'for every platform' };
}

/**
 * The per-platform live view of `farm build`: one line per platform and one for the index.
 * On a TTY the block is redrawn in place (cursor up, erase line); elsewhere a line is printed
 * each time a platform changes, so logs and CI output stay readable.
 *
 * Elapsed times of running work are measured on this machine's clock (the farm's may be
 * skewed); finished platforms show the farm's own start-to-finish duration.
 */
export class ProgressView {
  private readonly started: number;
  private readonly runningSince = new Map<string, number>();
  private readonly endedAfter = new Map<string, number>();
  private readonly printed = new Map<string, string>();
  private drawnLines = 0;

  constructor(
    private readonly out: Terminal,
    private readonly now: () => number = Date.now,
  ) {
    this.started = now();
  }

  get live(): boolean {
    return this.out.isTTY === true;
  }

  /** Shows the build's current state. */
  update(build: BuildView): void {
    const rows = this.rows(build);
    if (this.live) this.redraw(rows.map((row) => row.text));
    else this.printChanges(rows);
  }

  /** Shows the final state and gives the cursor back. */
  finish(build: BuildView): void {
    this.update(build);
    this.release();
  }

  /** Gives the cursor back, e.g. when interrupted. */
  release(): void {
    if (this.live && this.drawnLines > 0) this.out.write(`${CSI}?25h`);
  }

  private rows(build: BuildView): { key: string; text: string }[] {
    const now = this.now();
    const nameWidth = Math.max('index'.length, ...build.platforms.map((p) => p.platform.length));
    const line = (name: string, status: string, elapsed: number, detail: string) =>
      `${name.padEnd(nameWidth)}  ${status.padEnd(STATUS_WIDTH)}  ${formatDuration(elapsed).padStart(6)}  ${detail}`.trimEnd();
    const rows = build.platforms.map((p) => {
      const detail = platformDetail(p);
      return {
        key: `${p.platform} ${p.status} ${detail}`,
        text: line(p.platform, p.status, this.elapsed(p, now), detail),
      };
    });
    const index = indexState(build);
    const total =
      ENDED.has(build.status) && build.finishedAt
        ? Date.parse(build.finishedAt) - Date.parse(build.createdAt)
        : now - this.started;
    rows.push({ key: `index ${index.status}`, text: line('index', index.status, total, index.detail) });
    return rows;
  }

  private elapsed(p: PlatformView, now: number): number {
    if (WAITING.has(p.status)) return now - this.started;
    if (p.status === 'running') {
      if (!this.runningSince.has(p.platform)) this.runningSince.set(p.platform, now);
      return now - (this.runningSince.get(p.platform) ?? now);
    }
    if (p.startedAt && p.finishedAt) return Date.parse(p.finishedAt) - Date.parse(p.startedAt);
    if (!this.endedAfter.has(p.platform)) this.endedAfter.set(p.platform, now - this.started);
    return this.endedAfter.get(p.platform) ?? 0;
  }

  private redraw(lines: string[]): void {
    // A line wider than the terminal wraps, and cursor-up would then land in the wrong place.
    const width = Math.max(20, (this.out.columns || 80) - 1);
    let text = this.drawnLines === 0 ? `${CSI}?25l` : `${CSI}${this.drawnLines}A`;
    for (const line of lines) text += `\r${CSI}2K${line.slice(0, width)}\n`;
    this.out.write(text);
    this.drawnLines = lines.length;
  }

  private printChanges(rows: { key: string; text: string }[]): void {
    let text = '';
    rows.forEach((row, i) => {
      if (this.printed.get(String(i)) === row.key) return;
      this.printed.set(String(i), row.key);
      text += `${row.text}\n`;
    });
    if (text) this.out.write(text);
  }
}
