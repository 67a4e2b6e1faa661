import { Body, Controller, Get, Header, HttpCode, Param, Post, Query } from '@nestjs/common';
import { BuildsService } from './builds.service';
import { CreateBuildDto, ListBuildsQuery, LogsQuery } from './create-build.dto';
import type { BuildView } from './build.view';

@Controller('v1/builds')
export class BuildsController {
  constructor(private readonly builds: BuildsService) {}

  @Post()
  @HttpCode(202)
  create(@Body() body: CreateBuildDto): Promise<BuildView> {
    return this.builds.create(body);
  }

  @Get()
  list(@Query() query: ListBuildsQuery): Promise<{ builds: BuildView[]; nextCursor: string | null }> {
    return this.builds.list(query);
  }

  @Get(':id')
  get(@Param('id') id: string): Promise<BuildView> {
    return this.builds.get(id);
  }

  @Get(':id/logs')
  @Header('Content-Type', 'text/plain; charset=utf-8')
  logs(@Param('id') id: string, @Query() query: LogsQuery): Promise<string> {
    return this.builds.logs(id, query.platform);
  }
}
