import { Controller, Get, HttpCode, Param, Post } from '@nestjs/common';
import { AgentsService, type AgentView } from './agents.service';

@Controller('v1/agents')
export class AgentsController {
  constructor(private readonly agents: AgentsService) {}

  @Get()
  list(): Promise<{ agents: AgentView[] }> {
    return this.agents.list();
  }

  /** Takes no new job; running ones finish. The agent stays up, idle, until undrained. */
  @Post(':id/drain')
  @HttpCode(202)
  drain(@Param('id') id: string): Promise<AgentView> {
    return this.agents.command(id, 'drain');
  }

  @Post(':id/undrain')
  @HttpCode(202)
  undrain(@Param('id') id: string): Promise<AgentView> {
    return this.agents.command(id, 'active');
  }
}
