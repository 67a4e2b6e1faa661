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
