import 'reflect-metadata';
import { NestFactory } from '@nestjs/core';
import { ConfigError, loadCoordinatorConfig } from '@farm/config';
import { createLogger, NestLogger } from '@farm/logging';
import { CoordinatorModule } from './coordinator.module';

async function main(): Promise<void> {
  const config = loadCoordinatorConfig();
  const logger = createLogger({ name: 'coordinator', level: config.logLevel });
  const app = await NestFactory.createApplicationContext(CoordinatorModule.forRoot(config), {
    logger: new NestLogger(logger),
  });
  app.enableShutdownHooks();
  logger.info('buildfarm coordinator running');
}

main().catch((error: unknown) => {
  console.error(error instanceof ConfigError ? error.message : error);
  process.exit(1);
});
