import { Controller, Get, HttpCode, Param, Post, Query, Req } from '@nestjs/common';
import { ApiBody, ApiConsumes, ApiProperty, ApiResponse } from '@nestjs/swagger';
import { IsString, Matches } from 'class-validator';
import type { Request } from 'express';
import { Scopes } from '../common/auth.guard';
import { ContextStore, MAX_CONTEXT_BYTES, type ContextView } from './context-store';

export class UploadContextQuery {
  @ApiProperty({ description: 'sha256 of the body, checked as it arrives', pattern: '^sha256:[0-9a-f]{64}$' })
  @IsString()
  @Matches(/^sha256:[0-9a-f]{64}$/, { message: 'digest must be sha256: and 64 lowercase hex digits' })
  digest!: string;
}

/**
 * `farm build --upload`: the build context as a .tar.gz blob, uploaded once per content and
 * then named by its digest in `POST /v1/builds` (`contextDigest`). Uploading is part of
 * submitting a build, hence builds:write for both calls.
 */
@Controller('v1/contexts')
@Scopes('builds:write')
export class ContextsController {
  constructor(private readonly contexts: ContextStore) {}

  @Post()
  @HttpCode(201)
  @ApiConsumes('application/gzip', 'application/octet-stream')
  @ApiBody({
    description: `The context as a gzip-compressed tar, at most ${MAX_CONTEXT_BYTES} bytes (413 beyond), with its Content-Length`,
    schema: { type: 'string', format: 'binary' },
  })
  @ApiResponse({ status: 201, description: '{digest, size}: stored, or already there' })
  @ApiResponse({ status: 400, description: 'The body does not hash to the digest claimed: nothing is stored' })
  upload(@Query() query: UploadContextQuery, @Req() request: Request): Promise<ContextView> {
    return this.contexts.upload(query.digest, {
      contentType: request.headers['content-type'],
      contentLength: request.headers['content-length'],
      body: request,
    });
  }

  /** `{digest, size}`, or 404: lets a client skip uploading a context the farm already has (also as HEAD). */
  @Get(':digest')
  describe(@Param('digest') digest: string): Promise<ContextView> {
    return this.contexts.describe(digest);
  }
}
