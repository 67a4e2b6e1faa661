import 'reflect-metadata';
import { NestFactory } from '@nestjs/core';
import type { NestExpressApplication } from '@nestjs/platform-express';
import { json, raw, type NextFunction, type Request, type Response } from 'express';
import { ConfigError, loadApiConfig } from '@farm/config';
import { createLogger, NestLogger, requestLogging } from '@farm/logging';
import { AppModule } from './app.module';
import { answerMalformedRequests, requireJsonBodies } from './common/request-shape';
import { setupDocs } from './docs/docs';
import { HOOK_BODY_LIMIT } from './hooks/hooks.controller';

/** JSON bodies larger than this answer 413: a build or project request is a few kB. */
const JSON_BODY_LIMIT = '64kb';

/**
 * Context uploads (`/v1/contexts`) are archives that their handler reads itself, under its
 * own limit: no JSON parser touches them.
 */
function isContextUpload(path: string): boolean {
  return path === '/v1/contexts' || path.startsWith('/v1/contexts/');
}

/** Requests about one build (`/v1/builds/<id>/...`) carry its id in every log line. */
function buildInPath(path: string): { buildId?: string } {
  const buildId = /^\/v1\/builds\/([0-9a-f-]{36})(?:\/|$)/.exec(path)?.[1];
  return buildId ? { buildId } : {};
}

async function main(): Promise<void> {
  const config = loadApiConfig();
  const logger = createLogger({ name: 'api', level: config.logLevel });
  const app = await NestFactory.create<NestExpressApplication>(AppModule.forRoot(config), {
    bodyParser: false,
    logger: new NestLogger(logger),
  });
  // Behind a proxy, the client is the address the proxy names (rate limits and logs use it).
  if (config.trustProxy !== undefined) app.set('trust proxy', config.trustProxy);
  // First, so everything after it logs with the request's id (and build id, see buildInPath).
  app.use(requestLogging(logger, { contextFrom: buildInPath, quietPaths: ['/healthz', '/readyz', '/metrics'] }));
  // Body limits per route. Webhooks get their body raw (signatures cover the exact bytes) and
  // a larger cap; the JSON parser then leaves those requests alone, and context uploads too.
  app.use('/v1/projects/:id/hooks', raw({ type: () => true, limit: HOOK_BODY_LIMIT }));
  const jsonBody = json({ limit: JSON_BODY_LIMIT });
  app.use(requireJsonBodies((path) => isContextUpload(path) || /^\/v1\/projects\/[^/]+\/hooks(\/|$)/.test(path)));
  app.use((request: Request, response: Response, next: NextFunction) =>
    isContextUpload(request.path) ? next() : jsonBody(request, response, next),
  );
  app.enableShutdownHooks();
  setupDocs(app);
  answerMalformedRequests(app.getHttpServer());
  await app.listen(config.port, config.host);
  logger.info(`buildfarm api listening on http://${config.host}:${config.port}`);
}

main().catch((error: unknown) => {
  console.error(error instanceof ConfigError ? error.message : error);
  process.exit(1);
});
