import 'reflect-metadata';
import { NestFactory } from '@nestjs/core';
import { ConfigError, loadCoordinatorConfig } from '@farm/config';
import { CoordinatorModule } from './coordinator.module';

async function main(): Promise<void> {
  const config = loadCoordinatorConfig();
  const app = await NestFactory.createApplicationContext(CoordinatorModule.forRoot(config), {
    logger: config.logLevel === 'silent' ? false : undefined,
  });
  app.enableShutdownHooks();
  console.log('buildfarm coordinator running');
}

main().catch((error: unknown) => {
  console.error(error instanceof ConfigError ? error.message : error);
  process.exit(1);
});
