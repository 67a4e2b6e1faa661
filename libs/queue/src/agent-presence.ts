import type { Redis } from 'ioredis';
import { agentCommandsKey, agentsKey } from './names';

/**
 * Agent registration and heartbeats (part of the agent protocol, see agent-protocol.ts).
 *
 * Each agent writes its presence under its id on every heartbeat; an agent silent for longer
 * than its heartbeat timeout is offline. Operators' drain requests travel the other way, in
 * a commands hash each agent reads with its heartbeat.
 */

export type AgentState = 'online' | 'draining';

export interface AgentJob {
  buildId: string;
  platform: string;
  jobId: string;
  startedAt: string;
}

export interface AgentPresence {
  id: string;
  name: string;
  version: string;
  platforms: string[];
  emulated: boolean;
  labels: string[];
  /** `local` (buildah on the agent's host) or `ssh://user@host:port` */
  backend: string;
  concurrency: number;
  state: AgentState;
  currentJobs: AgentJob[];
  startedAt: string;
  lastSeenAt: string;
  /** After this long without a heartbeat the agent counts as offline. */
  heartbeatTimeoutMs: number;
}

export type AgentStatus = AgentState | 'offline';

export function agentStatus(agent: AgentPresence, now = Date.now()): AgentStatus {
  return now - Date.parse(agent.lastSeenAt) > agent.heartbeatTimeoutMs ? 'offline' : agent.state;
}

export async function writePresence(redis: Redis, prefix: string, presence: AgentPresence): Promise<void> {
  await redis.hset(agentsKey(prefix), presence.id, JSON.stringify(presence));
}

export async function removePresence(redis: Redis, prefix: string, id: string): Promise<void> {
  await redis.hdel(agentsKey(prefix), id);
}

/** Every agent that registered, online or not; entries that do not parse are skipped. */
export async function readPresences(redis: Redis, prefix: string): Promise<AgentPresence[]> {
  const entries = await redis.hgetall(agentsKey(prefix));
  const agents: AgentPresence[] = [];
  for (const value of Object.values(entries)) {
    try {
      const agent = JSON.parse(value) as AgentPresence;
      if (typeof agent.id === 'string' && typeof agent.lastSeenAt === 'string' && Array.isArray(agent.platforms)) {
        agents.push({ ...agent, labels: agent.labels ?? [], currentJobs: agent.currentJobs ?? [] });
      }
    } catch {
      // a newer or broken entry: not ours to interpret
    }
  }
  return agents.sort((a, b) => a.name.localeCompare(b.name));
}

export type AgentCommand = 'drain' | 'active';

export async function setAgentCommand(redis: Redis, prefix: string, id: string, command: AgentCommand): Promise<void> {
  await redis.hset(agentCommandsKey(prefix), id, command);
}

export async function readAgentCommand(redis: Redis, prefix: string, id: string): Promise<AgentCommand> {
  return (await redis.hget(agentCommandsKey(prefix), id)) === 'drain' ? 'drain' : 'active';
}

/** Does an agent that is online (not draining) take jobs of `platform` requiring `requires`? */
export function agentServes(agent: AgentPresence, platform: string, requires: readonly string[], now = Date.now()) {
  return (
    agentStatus(agent, now) === 'online' &&
    agent.platforms.includes(platform) &&
    requires.every((label) => agent.labels.includes(label))
  );
}
