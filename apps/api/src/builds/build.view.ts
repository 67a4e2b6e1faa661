import type { BuildView, PlatformView } from '@farm/contract';
import type { BuildWithPlatforms } from '@farm/db';

const iso = (date: Date | null): string | null => (date ? date.toISOString() : null);

export function toBuildView(build: BuildWithPlatforms): BuildView {
  return {
    id: build.id,
    status: build.status,
    repo: build.repo,
    ref: build.ref,
    commit: build.commit,
    dockerfile: build.dockerfile,
    context: build.context,
    target: build.target,
    tags: build.tags,
    buildArgs: build.buildArgs,
    labels: build.labels,
    requires: build.requires,
    scheduleTimeout: build.scheduleTimeout,
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
    })),
    createdAt: build.createdAt.toISOString(),
    startedAt: iso(build.startedAt),
    finishedAt: iso(build.finishedAt),
    error: build.error,
  };
}

export type { BuildView, PlatformView };
