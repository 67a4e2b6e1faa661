import {
  IsInt,
  IsBoolean,
  Max,
  Min,
  ArrayMaxSize,
  IsArray,
  IsObject,
  IsOptional,
  IsString,
  Matches,
  ValidateIf,
  MaxLength,
  MinLength,
} from 'class-validator';
import { IsOptionalRepoPath, IsStringList } from '../common/validators';
import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';

/**
 * `POST /v1/builds`. Shapes and sizes are checked here; what the fields mean (platforms, image
 * references, repository URLs, refs, paths) is checked by the domain and git libraries in
 * BuildsService, so the rules live in one place for the API, the CLI and webhooks alike.
 */
export class CreateBuildDto {
  @ApiPropertyOptional({
    description: 'Git repository URL agents clone; required unless contextDigest is given',
    maxLength: 2048,
    example: 'https://git.example.com/team/app.git',
  })
  @ValidateIf((dto: CreateBuildDto) => dto.contextDigest === undefined || dto.repo !== undefined)
  @IsString()
  @MinLength(1)
  @MaxLength(2048)
  repo?: string;

  @ApiPropertyOptional({
    description:
      'An uploaded build context (POST /v1/contexts) to build instead of a git commit; ' +
      'repo, ref and commit are then not given, and dockerfile and context are paths inside it',
    pattern: '^sha256:[0-9a-f]{64}$',
  })
  @IsOptional()
  @IsString()
  @Matches(/^sha256:[0-9a-f]{64}$/, { message: 'contextDigest must be sha256: and 64 lowercase hex digits' })
  contextDigest?: string;

  @ApiPropertyOptional({
    description: 'Branch, tag or ref resolved once to a commit; default: the remote HEAD',
    example: 'main',
  })
  @IsOptional()
  @IsString()
  @MinLength(1)
  @MaxLength(255)
  ref?: string;

  @ApiPropertyOptional({
    description: 'Full commit SHA to build (instead of resolving ref)',
    pattern: '^[0-9a-f]{40}$',
  })
  @IsOptional()
  @IsString()
  @Matches(/^[0-9a-f]{40}$/, { message: 'commit must be a full 40-character lowercase hex commit SHA' })
  commit?: string;

  @ApiPropertyOptional({ description: 'Dockerfile path inside the context', default: 'Dockerfile' })
  @IsOptionalRepoPath()
  dockerfile?: string;

  @ApiPropertyOptional({ description: 'Build context directory inside the repository', default: '.' })
  @IsOptionalRepoPath()
  context?: string;

  @ApiProperty({
    description: 'OCI platforms, each built natively by an agent of that platform',
    type: [String],
    minItems: 1,
    maxItems: 16,
    example: ['linux/amd64', 'linux/arm64'],
  })
  @IsStringList(16, 64, 'platforms must list at least one platform')
  platforms!: string[];

  @ApiProperty({
    description: 'Image references the index is published under',
    type: [String],
    minItems: 1,
    maxItems: 32,
    example: ['registry.example.com/team/app:1.2'],
  })
  @IsStringList(32, 512, 'tags must list at least one image reference to publish')
  tags!: string[];

  @ApiPropertyOptional({
    description: 'Build arguments (ARG)',
    type: 'object',
    additionalProperties: { type: 'string' },
  })
  @IsOptional()
  @IsObject()
  buildArgs?: Record<string, string>;

  @ApiPropertyOptional({
    description:
      'Build secrets, by id: each reaches the build as a file only for the RUN steps that mount it ' +
      '(`RUN --mount=type=secret,id=NAME cat /run/secrets/NAME`), never as a build arg, in the ' +
      'image or its history, in logs (masked) or in responses; stored and queued only encrypted ' +
      '(FARM_SECRETS_KEY). Ids: letters, digits, "_", "." and "-" (at most 64); values up to 32 KiB.',
    type: 'object',
    additionalProperties: { type: 'string', writeOnly: true },
    example: { NPM_TOKEN: '<secret>' },
  })
  @IsOptional()
  @IsObject()
  secrets?: Record<string, string>;

  @ApiPropertyOptional({ description: 'Image labels', type: 'object', additionalProperties: { type: 'string' } })
  @IsOptional()
  @IsObject()
  labels?: Record<string, string>;

  @ApiPropertyOptional({ description: 'Target stage of a multi-stage Dockerfile', maxLength: 128 })
  @IsOptional()
  @IsString()
  @MinLength(1)
  @MaxLength(128)
  target?: string;

  /** Labels the building agents must carry, e.g. ["large"]. */
  @ApiPropertyOptional({
    description: 'Labels the building agents must all carry',
    type: [String],
    maxItems: 5,
    example: ['large'],
  })
  @IsOptional()
  @IsArray()
  @ArrayMaxSize(5)
  @IsString({ each: true })
  @Matches(/^[a-z0-9][a-z0-9-]{0,31}$/, {
    each: true,
    message: 'requires must list labels of lowercase letters, digits and "-" (at most 32 characters)',
  })
  requires?: string[];

  /** Seconds a platform may wait for a matching agent before the build fails; default: forever. */
  @ApiPropertyOptional({
    description: 'Seconds a platform may wait for a matching agent before the build fails; default: forever',
    type: 'integer',
    minimum: 1,
    maximum: 86_400,
  })
  @IsOptional()
  @IsInt()
  @Min(1)
  @Max(86_400)
  scheduleTimeout?: number;

  @ApiPropertyOptional({
    description:
      'Reuse nothing: no cached layer and no image an agent built earlier from the same inputs (like `docker build --no-cache`)',
    type: 'boolean',
    default: false,
  })
  @IsOptional()
  @IsBoolean()
  noCache?: boolean;
}

export class ListBuildsQuery {
  @ApiPropertyOptional({ enum: ['queued', 'running', 'succeeded', 'failed', 'canceled'] })
  @IsOptional()
  @IsString()
  @Matches(/^(queued|running|succeeded|failed|canceled)$/, {
    message: 'status must be one of queued, running, succeeded, failed, canceled',
  })
  status?: 'queued' | 'running' | 'succeeded' | 'failed' | 'canceled';

  @ApiPropertyOptional({ description: 'Only builds of this repository URL' })
  @IsOptional()
  @IsString()
  @MaxLength(2048)
  repo?: string;

  @ApiPropertyOptional({ description: 'nextCursor of the previous page' })
  @IsOptional()
  @IsString()
  @Matches(/^[0-9a-f-]{36}$/, { message: 'cursor must be a build id' })
  cursor?: string;

  @ApiPropertyOptional({ type: 'integer', minimum: 1, maximum: 100, default: 20 })
  @IsOptional()
  @Matches(/^([1-9]|[1-9][0-9]|100)$/, { message: 'limit must be an integer from 1 to 100' })
  limit?: string;
}

export class LogsQuery {
  @ApiPropertyOptional({ description: 'Only this platform', example: 'linux/arm64' })
  @IsOptional()
  @IsString()
  @MaxLength(64)
  platform?: string;

  @ApiPropertyOptional({ type: 'boolean', description: 'Stream as Server-Sent Events until the build ends' })
  @IsOptional()
  @Matches(/^(true|false|1|0)$/, { message: 'follow must be true or false' })
  follow?: string;
}
