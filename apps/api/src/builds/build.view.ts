import type { BuildView, PlatformProgressView, PlatformView } from '@farm/contract';
import type { BuildWithPlatforms } from '@farm/db';
import type { PlatformProgress } from '@farm/queue';

const iso = (date: Date | null): string | null => (date ? date.toISOString() : null);

/**
 * The REST view of a build. `progress` (what agents say their running platforms are doing) is
 * only read for single builds; without it every platform's progress is null.
 */
export function toBuildView(build: BuildWithPlatforms, progress?: Map<string, PlatformProgress>): BuildView {
  const progressOf = (platform: string, status: string): PlatformProgressView | null => {
    const current = progress?.get(platform);
    // Only a running platform has progress, and only its current run's.
    if (!current || status !== 'running' || current.retry !== build.retries) return null;
    return {
      phase: current.phase,
      step: current.step ?? null,
      steps: current.steps ?? null,
      stage: current.stage ?? null,
      stages: current.stages ?? null,
    };
  };
  return {
    id: build.id,
    status: build.status,
    repo: build.repo,
    ref: build.ref,
    commit: build.commit,
    dockerfile: build.dockerfile,
    context: build.context,
    contextDigest: build.contextDigest,
    target: build.target,
    tags: build.tags,
    buildArgs: build.buildArgs,
    labels: build.labels,
    requires: build.requires,
    scheduleTimeout: build.scheduleTimeout,
    noCache: build.noCache,
    digest: build.digest,
    mediaType: build.mediaType,
    platforms: build.platforms.map((p) => ({
      platform: p.platform,
      status: p.status,
      statusReason: p.statusReason,
      digest: p.digest,
      mediaType: p.mediaType,
      size: p.size,
      agent: p.agent,
      emulated: p.emulated,
      attempts: p.attempts,
      startedAt: iso(p.startedAt),
      finishedAt: iso(p.finishedAt),
      error: p.error,
      logTail: p.logTail,
      progress: progressOf(p.platform, p.status),
    })),
    createdAt: build.createdAt.toISOString(),
    startedAt: iso(build.startedAt),
    finishedAt: iso(build.finishedAt),
    error: build.error,
    retries: build.retries,
  };
}

export type { BuildView, PlatformView };
