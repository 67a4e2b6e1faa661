import { Module, type DynamicModule } from '@nestjs/common';
import { PrismaService } from './prisma.service';
import { BuildRepository } from './build.repository';
import { MetricsRepository } from './metrics.repository';
import { ProjectRepository } from './project.repository';
import { TokenRepository } from './token.repository';

/** Provides PrismaService and the repositories for one DATABASE_URL. */
@Module({})
export class DbModule {
  static forRoot(databaseUrl: string): DynamicModule {
    return {
      module: DbModule,
      global: true,
      providers: [
        { provide: PrismaService, useFactory: () => new PrismaService(databaseUrl) },
        BuildRepository,
        ProjectRepository,
        MetricsRepository,
        TokenRepository,
      ],
      exports: [PrismaService, BuildRepository, ProjectRepository, MetricsRepository, TokenRepository],
    };
  }
}
