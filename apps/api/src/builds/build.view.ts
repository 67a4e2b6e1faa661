import type { BuildWithPlatforms } from '@farm/db';

/** The REST v1 representation of a build (DESIGN.md `GET /v1/builds/{id}`). */
export interface BuildView {
  id: string;
  status: string;
  repo: string;
  ref: string | null;
  commit: string;
  dockerfile: string;
  context: string;
  target: string | null;
  tags: string[];
  buildArgs: unknown;
  labels: unknown;
  requires: string[];
  scheduleTimeout: number | null;
  digest: string | null;
  mediaType: string | null;
  platforms: PlatformView[];
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
  error: string | null;
}

export interface PlatformView {
  platform: string;
  status: string;
  /** Why the platform is in this status, e.g. why it is unschedulable. */
  statusReason: string | null;
  digest: string | null;
  mediaType: string | null;
  size: number | null;
  agent: string | null;
  emulated: boolean;
  attempts: number;
  startedAt: string | null;
  finishedAt: string | null;
  error: string | null;
  logTail: string | null;
}

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
