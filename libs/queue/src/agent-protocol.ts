/**
 * The agent protocol, written down (woodpecker `rpc/peer.go` in spirit).
 *
 * Agents hold no database credentials; everything they say to the control plane goes
 * through Redis under the farm's key prefix:
 *
 * - **take job**: a BullMQ Worker on `build.<platform>` (only the platforms the agent runs);
 *   BullMQ's lock is the lease, extended automatically while the build runs.
 * - **stream logs**: XADD of each output line to `logStreamKey(prefix, buildId, platform)`,
 *   capped at LOG_STREAM_MAX_LINES.
 * - **started / ended**: an {@link AgentEvent} XADDed to `eventStreamKey(prefix)`; the
 *   coordinator reads it through a consumer group and mirrors it into PostgreSQL.
 * - **done**: the job's return value ({@link PlatformBuildResult}); a thrown error fails the
 *   attempt (BullMQ retries it) and `UnrecoverableError` fails the platform for good.
 * - **progress**: what a running platform is doing (checking out, building step N of M,
 *   pushing), HSET into `progressKey(prefix, buildId)` (see progress.ts).
 * - **cancel**: the api sets `cancelKey(prefix, jobId)` and publishes the job id on
 *   `cancelChannel(prefix)` (see cancel.ts); the agent holding the job aborts its processor's
 *   AbortSignal (`Worker.cancelJob`), which kills the build process, and reports the platform
 *   `canceled`. An agent taking a job whose key is set does not start it.
 * - **cache affinity**: after a success the agent records itself as the repository's affine
 *   agent for the platform; an agent taking a job whose affine agent is another, free one puts
 *   the job back once for that agent to take (see affinity.ts).
 *
 * Registration, heartbeats and drain: agent-presence.ts.
 */

import type { PlatformBuildResult } from './payloads';

export const LOG_STREAM_MAX_LINES = 20_000;

/** A platform attempt began on an agent. */
export interface PlatformStartedEvent {
  type: 'platform.started';
  buildId: string;
  platform: string;
  agent: string;
  emulated: boolean;
  attempt: number;
  /** The build's run the job belongs to (absent from agents before retries: 0). */
  retry?: number;
  at: string;
}

/** A platform attempt ended; `final` is false when BullMQ will retry it. */
export interface PlatformEndedEvent {
  type: 'platform.ended';
  buildId: string;
  platform: string;
  agent: string;
  emulated: boolean;
  attempt: number;
  retry?: number;
  /** `canceled`: stopped on request (always final). */
  status: 'succeeded' | 'failed' | 'canceled';
  final: boolean;
  /** On success: what the job returned. */
  result?: PlatformBuildResult;
  error?: string;
  at: string;
}

/**
 * Not from an agent: the api accepted a build from a webhook (after its transaction
 * committed), so the coordinator can report "pending" statuses to the forge right away.
 */
export interface BuildAcceptedEvent {
  type: 'build.accepted';
  buildId: string;
  at: string;
}

/** Not from an agent either: the api canceled a build; these platforms had not ended yet. */
export interface BuildCanceledEvent {
  type: 'build.canceled';
  buildId: string;
  platforms: string[];
  at: string;
}

export type AgentEvent = PlatformStartedEvent | PlatformEndedEvent;
export type FarmEvent = AgentEvent | BuildAcceptedEvent | BuildCanceledEvent;

/** Events travel as one JSON field, so the stream entry stays a flat Redis hash. */
export function encodeAgentEvent(event: FarmEvent): [string, string] {
  return ['event', JSON.stringify(event)];
}

/** Decodes and validates an event; returns undefined for entries this version does not know. */
export function decodeAgentEvent(fields: string[]): FarmEvent | undefined {
  const index = fields.indexOf('event');
  if (index < 0 || index + 1 >= fields.length) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(fields[index + 1]);
  } catch {
    return undefined;
  }
  const accepted = value as Partial<BuildAcceptedEvent> | null;
  if (accepted?.type === 'build.accepted' && typeof accepted.buildId === 'string' && typeof accepted.at === 'string') {
    return accepted as BuildAcceptedEvent;
  }
  const canceled = value as Partial<BuildCanceledEvent> | null;
  if (canceled?.type === 'build.canceled' && typeof canceled.buildId === 'string' && typeof canceled.at === 'string') {
    const platforms = Array.isArray(canceled.platforms) ? canceled.platforms : [];
    return { ...canceled, platforms: platforms.filter((p) => typeof p === 'string') } as BuildCanceledEvent;
  }
  const event = value as Partial<AgentEvent> | null;
  if (!event || typeof event.buildId !== 'string' || typeof event.platform !== 'string') return undefined;
  if (typeof event.agent !== 'string' || typeof event.attempt !== 'number' || typeof event.at !== 'string') {
    return undefined;
  }
  if (event.retry !== undefined && (typeof event.retry !== 'number' || !Number.isInteger(event.retry))) {
    return undefined;
  }
  if (event.type === 'platform.started') return event as PlatformStartedEvent;
  if (event.type === 'platform.ended' && ['succeeded', 'failed', 'canceled'].includes(event.status ?? '')) {
    return event as PlatformEndedEvent;
  }
  return undefined;
}
