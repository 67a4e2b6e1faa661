import 'reflect-metadata';
import { NestFactory } from '@nestjs/core';
import type { NestExpressApplication } from '@nestjs/platform-express';
import { raw } from 'express';
import { ConfigError, loadApiConfig } from '@farm/config';
import { AppModule } from './app.module';
import { HOOK_BODY_LIMIT } from './hooks/hooks.controller';

/** Request bodies larger than this answer 413 (a build request is a few kB). */
const BODY_LIMIT = '1mb';

async function main(): Promise<void> {
  const config = loadApiConfig();
  const app = await NestFactory.create<NestExpressApplication>(AppModule.forRoot(config), {
    bodyParser: false,
    logger: config.logLevel === 'silent' ? false : undefined,
  });
  // Webhooks get their body raw (signatures cover the exact bytes) and a larger cap; the JSON
  // parser then leaves those requests alone.
  app.use('/v1/projects/:id/hooks', raw({ type: () => true, limit: HOOK_BODY_LIMIT }));
  app.useBodyParser('json', { limit: BODY_LIMIT });
  app.enableShutdownHooks();
  await app.listen(config.port, config.host);
  console.log(`buildfarm api listening on http://${config.host}:${config.port}`);
}

main().catch((error: unknown) => {
  console.error(error instanceof ConfigError ? error.message : error);
  process.exit(1);
});
