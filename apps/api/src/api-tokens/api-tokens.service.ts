import { Injectable } from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import { TokenRepository } from '@farm/db';
import { ApiError } from '../common/api-error';
import type { CreateApiTokenDto } from './api-token.dto';
import { toApiTokenView, type ApiTokenView, type CreatedApiTokenView } from './api-token.view';
import { hashTokenSecret, newTokenSecret, shownPrefix } from './token-secret';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

@Injectable()
export class ApiTokensService {
  constructor(private readonly tokens: TokenRepository) {}

  /** Creates a token; its secret is in this answer and nowhere else, ever (only its hash is kept). */
  async create(dto: CreateApiTokenDto): Promise<CreatedApiTokenView> {
    const secret = newTokenSecret();
    const token = await this.tokens.create({
      id: randomUUID(),
      name: dto.name,
      scopes: dto.scopes,
      secretHash: hashTokenSecret(secret),
      prefix: shownPrefix(secret),
    });
    return { ...toApiTokenView(token), secret };
  }

  async list(): Promise<{ tokens: ApiTokenView[] }> {
    return { tokens: (await this.tokens.list()).map(toApiTokenView) };
  }

  /** From now on, requests with the token answer 401. Revoking twice is fine. */
  async revoke(id: string): Promise<void> {
    const found = UUID.test(id) && (await this.tokens.revoke(id, new Date()));
    if (!found) throw new ApiError('not_found', `token ${id} not found`);
  }
}
