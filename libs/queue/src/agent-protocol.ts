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
 * - **cancel**: the processor's AbortSignal, which kills the build process.
 *
 * Registration, heartbeats and drain come with the builder-pools work.
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
  status: 'succeeded' | 'failed';
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

export type AgentEvent = PlatformStartedEvent | PlatformEndedEvent;
export type FarmEvent = AgentEvent | BuildAcceptedEvent;

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
  const event = value as Partial<AgentEvent> | null;
  if (!event || typeof event.buildId !== 'string' || typeof event.platform !== 'string') return undefined;
  if (typeof event.agent !== 'string' || typeof event.attempt !== 'number' || typeof event.at !== 'string') {
    return undefined;
  }
  if (event.type === 'platform.started') return event as PlatformStartedEvent;
  if (event.type === 'platform.ended' && (event.status === 'succeeded' || event.status === 'failed')) {
    return event as PlatformEndedEvent;
  }
  return undefined;
}
