/**
 * The REST v1 representations (README "REST v1"), shared by the api that serves them and the
 * clients (the `farm` CLI) that read them. Types only: no runtime code, no dependencies.
 */

export type AgentStatus = 'online' | 'draining' | 'offline';

/** A job an agent is running. */
export interface AgentJobView {
  buildId: string;
  platform: string;
  jobId: string;
  startedAt: string;
}

/** The REST v1 representation of a build (DESIGN.md `GET /v1/builds/{id}`). */
export interface BuildView {
  id: string;
  status: string;
  repo: string;
  ref: string | null;
  commit: string;
  dockerfile: string;
  context: string;
  /** The uploaded context (`farm build --upload`) built instead of `repo` at `commit` (both empty then). */
  contextDigest: string | null;
  target: string | null;
  tags: string[];
  buildArgs: unknown;
  labels: unknown;
  requires: string[];
  scheduleTimeout: number | null;
  /** Built reusing nothing (no layer cache, no earlier result). */
  noCache: boolean;
  digest: string | null;
  mediaType: string | null;
  platforms: PlatformView[];
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
  error: string | null;
  /** Times the build was retried (`POST /v1/builds/{id}/retry`); 0 for the first run. */
  retries: number;
}

/** What a running platform is doing; `step`/`steps` (and `stage`/`stages`) come from buildah's STEP lines. */
export interface PlatformProgressView {
  phase: 'preparing' | 'building' | 'pushing';
  step: number | null;
  steps: number | null;
  stage: number | null;
  stages: number | null;
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
  /** Only while the platform runs, and only in `GET /v1/builds/{id}` (null in lists). */
  progress: PlatformProgressView | null;
}

/** `GET /v1/agents`: what every agent last said about itself, and whether it still says it. */
export interface AgentView {
  id: string;
  name: string;
  platforms: string[];
  emulated: boolean;
  labels: string[];
  backend: string;
  concurrency: number;
  status: AgentStatus;
  currentJobs: AgentJobView[];
  startedAt: string;
  lastSeenAt: string;
  version: string;
}

/** `GET /v1/tokens`: a token as listed. The secret is never part of it, nor its hash. */
export interface ApiTokenView {
  id: string;
  name: string;
  scopes: string[];
  /** The secret's first characters, to tell tokens apart. */
  prefix: string;
  createdAt: string;
  lastUsedAt: string | null;
  revokedAt: string | null;
}

/** `POST /v1/tokens`: the new token, with its secret, shown this once. */
export interface CreatedApiTokenView extends ApiTokenView {
  secret: string;
}
