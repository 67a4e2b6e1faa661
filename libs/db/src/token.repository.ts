import { Injectable } from '@nestjs/common';
import type { ApiToken } from './generated/client';
import { PrismaService } from './prisma.service';

export type { ApiToken };

export type NewApiToken = Pick<ApiToken, 'id' | 'name' | 'scopes' | 'secretHash' | 'prefix'>;

/** Scoped API tokens, stored by the SHA-256 of their secret (the secret itself never is). */
@Injectable()
export class TokenRepository {
  constructor(private readonly prisma: PrismaService) {}

  async create(token: NewApiToken): Promise<ApiToken> {
    return this.prisma.apiToken.create({ data: token });
  }

  /** Every token, revoked ones included, newest first. */
  async list(): Promise<ApiToken[]> {
    return this.prisma.apiToken.findMany({ orderBy: [{ createdAt: 'desc' }, { id: 'asc' }] });
  }

  /** The token whose secret hashes to `secretHash`, revoked or not. */
  async findByHash(secretHash: string): Promise<ApiToken | null> {
    return this.prisma.apiToken.findUnique({ where: { secretHash } });
  }

  /** Revokes the token (a second revoke keeps the first time); false when there is no such token. */
  async revoke(id: string, at: Date): Promise<boolean> {
    await this.prisma.apiToken.updateMany({ where: { id, revokedAt: null }, data: { revokedAt: at } });
    return (await this.prisma.apiToken.count({ where: { id } })) > 0;
  }

  /**
   * Records a use at `at`, unless one was recorded after `unlessSince`: api replicas then write
   * at most about once per interval per token, whatever each of them remembers.
   */
  async touch(id: string, at: Date, unlessSince: Date): Promise<void> {
    await this.prisma.apiToken.updateMany({
      where: { id, OR: [{ lastUsedAt: null }, { lastUsedAt: { lt: unlessSince } }] },
      data: { lastUsedAt: at },
    });
  }
}
