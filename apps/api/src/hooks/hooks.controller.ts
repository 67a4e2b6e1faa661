import { Controller, HttpCode, Param, Post, Req, Res } from '@nestjs/common';
import type { Request, Response } from 'express';
import { Public } from '../common/auth.guard';
import { HooksService } from './hooks.service';

/** Largest delivery accepted, as GitHub caps payloads at 25 MB. */
export const HOOK_BODY_LIMIT = '25mb';

/**
 * `POST /v1/projects/{id}/hooks/{github|gitlab|gitea}`: authenticated by the forge's signature
 * or token instead of a bearer token. The body arrives raw (see main.ts) so the signature is
 * checked over the exact bytes the forge signed.
 */
@Controller('v1/projects/:id/hooks')
@Public()
export class HooksController {
  constructor(private readonly hooks: HooksService) {}

  @Post(':forge')
  @HttpCode(200)
  async deliver(
    @Param('id') id: string,
    @Param('forge') forge: string,
    @Req() request: Request,
    @Res({ passthrough: true }) response: Response,
  ): Promise<Record<string, unknown>> {
    // Without a body the raw parser leaves none: an empty delivery then fails its signature.
    const body = Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0);
    const answer = await this.hooks.deliver(id, forge, body, request.headers);
    response.status(answer.status);
    if (answer.replayed) response.setHeader('X-Farm-Delivery-Replayed', 'true');
    return answer.body;
  }
}
