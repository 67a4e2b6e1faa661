import { Body, Controller, Get, HttpCode, Param, Post, Query, Req, Res } from '@nestjs/common';
import { ApiHeader, ApiOkResponse, ApiProduces } from '@nestjs/swagger';
import type { Request, Response } from 'express';
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

  /** Plain text, or with `follow=true` Server-Sent Events until the build ends (see LogFollower). */
  @Get(':id/logs')
  @ApiProduces('text/plain', 'text/event-stream')
  @ApiOkResponse({
    description:
      'Without follow: the log as text, each line tagged "[platform] " unless one platform is asked for. ' +
      'With follow=true: Server-Sent Events until the build ends: `line` {platform, line} with id ' +
      '"<platform>|<stream id>", `status` {platform, status, agent, emulated} on each change, then ' +
      '`end` {status, digest}. Logs are kept after the build: the last 1 MiB (about 20,000 lines) per platform.',
    schema: { type: 'string' },
  })
  @ApiHeader({ name: 'Last-Event-ID', required: false, description: 'With follow: resume after this event id' })
  async logs(
    @Param('id') id: string,
    @Query() query: LogsQuery,
    @Req() request: Request,
    @Res() response: Response,
  ): Promise<void> {
    if (query.follow === 'true' || query.follow === '1') {
      return this.builds.followLogs(id, query.platform, request.header('last-event-id'), response);
    }
    response.set('Content-Type', 'text/plain; charset=utf-8').send(await this.builds.logs(id, query.platform));
  }
}
