import { Controller, Get, HttpCode, Param, Post } from '@nestjs/common';
import { Scopes } from '../common/auth.guard';
import { AgentsService, type AgentView } from './agents.service';

@Controller('v1/agents')
export class AgentsController {
  constructor(private readonly agents: AgentsService) {}

  /** Readable with builds:read: people who build want to see the pools they build on. */
  @Get()
  @Scopes('builds:read')
  list(): Promise<{ agents: AgentView[] }> {
    return this.agents.list();
  }

  /** Takes no new job; running ones finish. The agent stays up, idle, until undrained. */
  @Post(':id/drain')
  @Scopes('agents:admin')
  @HttpCode(202)
  drain(@Param('id') id: string): Promise<AgentView> {
    return this.agents.command(id, 'drain');
  }

  @Post(':id/undrain')
  @Scopes('agents:admin')
  @HttpCode(202)
  undrain(@Param('id') id: string): Promise<AgentView> {
    return this.agents.command(id, 'active');
  }
}
