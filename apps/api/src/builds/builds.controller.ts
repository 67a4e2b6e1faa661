import { Body, Controller, Get, Headers, HttpCode, Param, Post, Query, Req, Res } from '@nestjs/common';
import { ApiHeader, ApiOkResponse, ApiProduces } from '@nestjs/swagger';
import type { Request, Response } from 'express';
import { BuildsService } from './builds.service';
import { BuildActionsService } from './build-actions.service';
import { CreateBuildDto, ListBuildsQuery, LogsQuery } from './create-build.dto';
import type { BuildView } from './build.view';
import { CallerSubject, Scopes } from '../common/auth.guard';

@Controller('v1/builds')
export class BuildsController {
  constructor(
    private readonly builds: BuildsService,
    private readonly actions: BuildActionsService,
  ) {}

  @Post()
  @Scopes('builds:write')
  @HttpCode(202)
  @ApiHeader({
    name: 'Idempotency-Key',
    required: false,
    description:
      'Makes the request safe to retry: the same key with the same request answers 202 with the build ' +
      'the first request created (no second build); the same key with another request answers 409. ' +
      '1 to 255 printable ASCII characters (e.g. a UUID), else 400. Keys are kept for 24 hours, per ' +
      'token: the same key sent with another token is another key.',
  })
  create(
    @Body() body: CreateBuildDto,
    @CallerSubject() caller: string,
    @Headers('idempotency-key') idempotencyKey?: string,
  ): Promise<BuildView> {
    return this.builds.create(body, idempotencyKey === undefined ? undefined : { key: idempotencyKey, caller });
  }

  @Get()
  @Scopes('builds:read')
  list(@Query() query: ListBuildsQuery): Promise<{ builds: BuildView[]; nextCursor: string | null }> {
    return this.builds.list(query);
  }

  @Get(':id')
  @Scopes('builds:read')
  get(@Param('id') id: string): Promise<BuildView> {
    return this.builds.get(id);
  }

  /** Stops a queued or running build: 409 for one that ended or is publishing its index. */
  @Post(':id/cancel')
  @Scopes('builds:write')
  @HttpCode(202)
  cancel(@Param('id') id: string): Promise<BuildView> {
    return this.actions.cancel(id);
  }

  /** Reruns the platforms of a failed or canceled build that did not succeed, then publishes: 409 otherwise. */
  @Post(':id/retry')
  @Scopes('builds:write')
  @HttpCode(202)
  retry(@Param('id') id: string): Promise<BuildView> {
    return this.actions.retry(id);
  }

  /** Plain text, or with `follow=true` Server-Sent Events until the build ends (see LogFollower). */
  @Get(':id/logs')
  @Scopes('builds:read')
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
