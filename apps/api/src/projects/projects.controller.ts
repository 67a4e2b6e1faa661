import { Body, Controller, Delete, Get, HttpCode, Param, Patch, Post, Query } from '@nestjs/common';
import { Scopes } from '../common/auth.guard';
import { CreateProjectDto, ListDeliveriesQuery, UpdateProjectDto } from './project.dto';
import { ProjectsService } from './projects.service';
import type { DeliveryView, ProjectView } from './project.view';

/**
 * Every route, reads included, needs projects:admin: a project is configuration, and its
 * deliveries tell who pushed what.
 */
@Controller('v1/projects')
@Scopes('projects:admin')
export class ProjectsController {
  constructor(private readonly projects: ProjectsService) {}

  @Post()
  @HttpCode(201)
  create(@Body() body: CreateProjectDto): Promise<ProjectView> {
    return this.projects.create(body);
  }

  @Get()
  list(): Promise<{ projects: ProjectView[] }> {
    return this.projects.list();
  }

  @Get(':id')
  get(@Param('id') id: string): Promise<ProjectView> {
    return this.projects.get(id);
  }

  @Patch(':id')
  update(@Param('id') id: string, @Body() body: UpdateProjectDto): Promise<ProjectView> {
    return this.projects.update(id, body);
  }

  @Delete(':id')
  @HttpCode(204)
  delete(@Param('id') id: string): Promise<void> {
    return this.projects.delete(id);
  }

  @Get(':id/deliveries')
  deliveries(@Param('id') id: string, @Query() query: ListDeliveriesQuery): Promise<{ deliveries: DeliveryView[] }> {
    return this.projects.deliveries(id, query);
  }
}
