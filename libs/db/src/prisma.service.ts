import { Injectable, type OnModuleDestroy } from '@nestjs/common';
import { PrismaPg } from '@prisma/adapter-pg';
import { PrismaClient } from './generated/client';

/**
 * The one PrismaClient of a process (Rust-free client over node-postgres, DESIGN.md).
 * Only libs/db imports Prisma; apps use the repositories.
 */
@Injectable()
export class PrismaService extends PrismaClient implements OnModuleDestroy {
  constructor(databaseUrl: string) {
    // A server that drops packets instead of refusing must not hold requests forever: after 5 s
    // the connect fails as "unavailable" (503, or a worker waiting for the database).
    super({ adapter: new PrismaPg({ connectionString: databaseUrl, connectionTimeoutMillis: 5_000 }) });
  }

  async onModuleDestroy(): Promise<void> {
    await this.$disconnect();
  }
}
