import {
  IsInt,
  Max,
  Min,
  ArrayMaxSize,
  ArrayMinSize,
  IsArray,
  IsObject,
  IsOptional,
  IsString,
  Matches,
  MaxLength,
  MinLength,
} from 'class-validator';

/**
 * `POST /v1/builds`. Shapes and sizes are checked here; what the fields mean (platforms, image
 * references, repository URLs, refs, paths) is checked by the domain and git libraries in
 * BuildsService, so the rules live in one place for the API, the CLI and webhooks alike.
 */
export class CreateBuildDto {
  @IsString()
  @MinLength(1)
  @MaxLength(2048)
  repo!: string;

  @IsOptional()
  @IsString()
  @MinLength(1)
  @MaxLength(255)
  ref?: string;

  @IsOptional()
  @IsString()
  @Matches(/^[0-9a-f]{40}$/, { message: 'commit must be a full 40-character lowercase hex commit SHA' })
  commit?: string;

  @IsOptional()
  @IsString()
  @MinLength(1)
  @MaxLength(1024)
  dockerfile?: string;

  @IsOptional()
  @IsString()
  @MinLength(1)
  @MaxLength(1024)
  context?: string;

  @IsArray()
  @ArrayMinSize(1, { message: 'platforms must list at least one platform' })
  @ArrayMaxSize(16)
  @IsString({ each: true })
  @MaxLength(64, { each: true })
  platforms!: string[];

  @IsArray()
  @ArrayMinSize(1, { message: 'tags must list at least one image reference to publish' })
  @ArrayMaxSize(32)
  @IsString({ each: true })
  @MaxLength(512, { each: true })
  tags!: string[];

  @IsOptional()
  @IsObject()
  buildArgs?: Record<string, string>;

  @IsOptional()
  @IsObject()
  labels?: Record<string, string>;

  @IsOptional()
  @IsString()
  @MinLength(1)
  @MaxLength(128)
  target?: string;

  /** Labels the building agents must carry, e.g. ["large"]. */
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
  @IsOptional()
  @IsInt()
  @Min(1)
  @Max(86_400)
  scheduleTimeout?: number;
}

export class ListBuildsQuery {
  @IsOptional()
  @IsString()
  @Matches(/^(queued|running|succeeded|failed|canceled)$/, {
    message: 'status must be one of queued, running, succeeded, failed, canceled',
  })
  status?: 'queued' | 'running' | 'succeeded' | 'failed' | 'canceled';

  @IsOptional()
  @IsString()
  @MaxLength(2048)
  repo?: string;

  @IsOptional()
  @IsString()
  @Matches(/^[0-9a-f-]{36}$/, { message: 'cursor must be a build id' })
  cursor?: string;

  @IsOptional()
  @Matches(/^([1-9]|[1-9][0-9]|100)$/, { message: 'limit must be an integer from 1 to 100' })
  limit?: string;
}

export class LogsQuery {
  @IsOptional()
  @IsString()
  @MaxLength(64)
  platform?: string;

  @IsOptional()
  @Matches(/^(true|false|1|0)$/, { message: 'follow must be true or false' })
  follow?: string;
}
