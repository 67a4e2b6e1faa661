import type { INestApplication } from '@nestjs/common';
import { ModulesContainer, Reflector } from '@nestjs/core';
import { ApiBearerAuth, ApiProperty, ApiPropertyOptional, DocumentBuilder, SwaggerModule } from '@nestjs/swagger';
import { ERROR_STATUS } from '../common/api-error';
import { Public } from '../common/auth.guard';

/** Swagger UI. */
export const DOCS_PATH = '/docs';
/** The OpenAPI 3 document, generated from the controllers and the DTOs that validate requests. */
export const OPENAPI_PATH = '/docs/openapi.json';

const BEARER = 'bearer';

class ApiErrorDetail {
  @ApiProperty({ enum: Object.keys(ERROR_STATUS) })
  code!: string;

  @ApiProperty()
  message!: string;

  @ApiPropertyOptional({ description: 'The request field at fault, e.g. platforms' })
  field?: string;
}

/** The one error body of REST v1 (common/api-error.ts). */
class ApiErrorResponse {
  @ApiProperty({ type: ApiErrorDetail })
  error!: ApiErrorDetail;
}

/**
 * Marks every controller that the AuthGuard protects (all but the @Public() ones) as needing
 * the bearer token, so the document states exactly what the guard enforces.
 */
function declareBearerAuth(app: INestApplication): void {
  const reflector = app.get(Reflector);
  const publicKey = Public().KEY;
  for (const module of app.get(ModulesContainer).values()) {
    for (const { metatype } of module.controllers.values()) {
      if (typeof metatype === 'function' && !reflector.get<boolean>(publicKey, metatype)) {
        ApiBearerAuth(BEARER)(metatype);
      }
    }
  }
}

/**
 * Serves the OpenAPI document at /docs/openapi.json and Swagger UI at /docs, both public. The
 * routes are registered on the HTTP adapter directly, outside the guards: call before listen().
 */
export function setupDocs(app: INestApplication): void {
  declareBearerAuth(app);
  const config = new DocumentBuilder()
    .setTitle('buildfarm')
    .setDescription(
      'Multi-arch container image builds: each platform built natively by an agent of that platform, ' +
        'the results published as one OCI image index under the requested tags.',
    )
    .setVersion('v1')
    .addBearerAuth(
      {
        type: 'http',
        scheme: 'bearer',
        description:
          'FARM_ADMIN_TOKEN, or an API token from POST /v1/tokens. Each operation lists the scopes it ' +
          'needs in x-farm-scopes (admin grants all of them).',
      },
      BEARER,
    )
    .addGlobalResponse({ status: 'default', description: 'Any error', type: ApiErrorResponse })
    .build();
  const document = SwaggerModule.createDocument(app, config);
  SwaggerModule.setup(DOCS_PATH, app, document, {
    jsonDocumentUrl: OPENAPI_PATH,
    raw: ['json'],
    customSiteTitle: 'buildfarm API',
  });
}
