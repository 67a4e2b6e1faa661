import { Inject, Injectable } from '@nestjs/common';
import type { Redis } from 'ioredis';
import type { ApiConfig } from '@farm/config';
import type { AgentView } from '@farm/contract';
import { agentStatus, readPresences, setAgentCommand } from '@farm/queue';
import { ApiError } from '../common/api-error';
import { API_CONFIG, REDIS } from '../tokens';

@Injectable()
export class AgentsService {
  constructor(
    @Inject(REDIS) private readonly redis: Redis,
    @Inject(API_CONFIG) private readonly config: ApiConfig,
  ) {}

  async list(): Promise<{ agents: AgentView[] }> {
    const now = Date.now();
    const agents = await readPresences(this.redis, this.config.queuePrefix);
    return {
      agents: agents.map((agent) => {
        const status = agentStatus(agent, now);
        return {
          id: agent.id,
          name: agent.name,
          platforms: agent.platforms,
          emulated: agent.emulated,
          labels: agent.labels,
          backend: agent.backend,
          concurrency: agent.concurrency,
          status,
          // An offline agent runs nothing any more, whatever it said last.
          currentJobs: status === 'offline' ? [] : agent.currentJobs,
          startedAt: agent.startedAt,
          lastSeenAt: agent.lastSeenAt,
          version: agent.version,
        };
      }),
    };
  }

  /** The agent applies it with its next heartbeat (within seconds). */
  async command(id: string, command: 'drain' | 'active'): Promise<AgentView> {
    const agent = (await this.list()).agents.find((a) => a.id === id);
    if (!agent) throw new ApiError('not_found', `agent ${id} not found`);
    await setAgentCommand(this.redis, this.config.queuePrefix, id, command);
    return agent;
  }
}

export type { AgentView };
