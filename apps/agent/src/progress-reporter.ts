import type { Redis } from 'ioredis';
import { parseBuildStep } from '@farm/domain';
import { clearProgress, writeProgress, type BuildPhase, type PlatformProgress } from '@farm/queue';

/**
 * Tells the control plane what a platform's job is doing (see libs/queue progress.ts): its
 * phase, and while building the step buildah is at, read from buildah's own `STEP n/m:` lines.
 * Writes go out in order, one at a time; losing one must not fail a build.
 */
export class ProgressReporter {
  private current?: Omit<PlatformProgress, 'at' | 'retry'>;
  private sending: Promise<void> = Promise.resolve();

  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
    private readonly buildId: string,
    private readonly platform: string,
    private readonly retry: number,
  ) {}

  /** The job entered a phase (building: before buildah printed its first step). */
  readonly phase = (phase: BuildPhase): void => {
    this.set({ phase });
  };

  /** Looks at every build output line for buildah's steps. */
  readonly line = (line: string): void => {
    const step = parseBuildStep(line);
    if (step) this.set({ phase: 'building', ...step });
  };

  /** The job ended: its platform no longer has progress. */
  async clear(): Promise<void> {
    await this.sending;
    await clearProgress(this.redis, this.prefix, this.buildId, this.platform).catch(() => undefined);
  }

  private set(progress: Omit<PlatformProgress, 'at' | 'retry'>): void {
    if (JSON.stringify(progress) === JSON.stringify(this.current)) return;
    this.current = progress;
    const entry: PlatformProgress = { ...progress, retry: this.retry, at: new Date().toISOString() };
    this.sending = this.sending
      .then(() => writeProgress(this.redis, this.prefix, this.buildId, this.platform, entry))
      .catch(() => undefined);
  }
}
