import { Body, Controller, Delete, Get, HttpCode, Param, Post } from '@nestjs/common';
import { Scopes } from '../common/auth.guard';
import { CreateApiTokenDto } from './api-token.dto';
import type { ApiTokenView, CreatedApiTokenView } from './api-token.view';
import { ApiTokensService } from './api-tokens.service';

/** Scoped API tokens, managed with the admin scope (the bootstrap FARM_ADMIN_TOKEN holds it). */
@Controller('v1/tokens')
@Scopes('admin')
export class ApiTokensController {
  constructor(private readonly tokens: ApiTokensService) {}

  /** The answer holds the token's `secret`: shown this once, never again. */
  @Post()
  @HttpCode(201)
  create(@Body() body: CreateApiTokenDto): Promise<CreatedApiTokenView> {
    return this.tokens.create(body);
  }

  @Get()
  list(): Promise<{ tokens: ApiTokenView[] }> {
    return this.tokens.list();
  }

  /** Revokes the token (kept in the list with revokedAt). */
  @Delete(':id')
  @HttpCode(204)
  revoke(@Param('id') id: string): Promise<void> {
    return this.tokens.revoke(id);
  }
}
