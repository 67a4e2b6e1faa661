import { ApiProperty, ApiPropertyOptional, PartialType } from '@nestjs/swagger';
import { IsIn, IsObject, IsOptional, IsString, Matches, MaxLength, MinLength } from 'class-validator';
import { IsOptionalRepoPath, IsStringList } from '../common/validators';

export const FORGES = ['github', 'gitlab', 'gitea'] as const;

/** `POST /v1/projects`. Meanings (URLs, platforms, templates, filters) are checked in ProjectsService. */
export class CreateProjectDto {
  @ApiProperty({ description: 'Unique project name', pattern: '^[a-z0-9][a-z0-9._-]{0,62}$', example: 'app' })
  @IsString()
  @Matches(/^[a-z0-9][a-z0-9._-]{0,62}$/, {
    message: 'name must be 1-63 lowercase letters, digits, ".", "_" or "-", starting with a letter or digit',
  })
  name!: string;

  @ApiProperty({ description: 'Git repository URL agents clone', maxLength: 2048 })
  @IsString()
  @MinLength(1)
  @MaxLength(2048)
  repo!: string;

  /** A repository without tag: registry.example.com/team/app */
  @ApiProperty({ description: 'Image repository without tag', example: 'registry.example.com/team/app' })
  @IsString()
  @MinLength(1)
  @MaxLength(512)
  image!: string;

  @ApiProperty({ type: [String], minItems: 1, maxItems: 16, example: ['linux/amd64', 'linux/arm64'] })
  @IsStringList(16, 64, 'platforms must list at least one platform')
  platforms!: string[];

  @ApiProperty({
    description: 'Tag templates rendered per push: {branch}, {tag}, {sha}, sha-{sha7}, {version}, latest, ...',
    type: [String],
    minItems: 1,
    maxItems: 32,
    example: ['{branch}', 'sha-{sha7}'],
  })
  @IsStringList(32, 128, 'tags must list at least one tag template')
  tags!: string[];

  @ApiPropertyOptional({ description: 'Branch globs to build; empty: every branch', type: [String], maxItems: 64 })
  @IsOptional()
  @IsStringList(64, 255)
  branches?: string[];

  @ApiPropertyOptional({ description: 'Git tag globs to build; empty: every tag', type: [String], maxItems: 64 })
  @IsOptional()
  @IsStringList(64, 255)
  tagsFilter?: string[];

  @ApiPropertyOptional({ default: 'Dockerfile' })
  @IsOptionalRepoPath()
  dockerfile?: string;

  @ApiPropertyOptional({ default: '.' })
  @IsOptionalRepoPath()
  context?: string;

  @ApiPropertyOptional({ type: 'object', additionalProperties: { type: 'string' } })
  @IsOptional()
  @IsObject()
  buildArgs?: Record<string, string>;

  /** Write-only: never returned. */
  @ApiProperty({ description: 'Verifies deliveries (write-only)', minLength: 16, maxLength: 256, writeOnly: true })
  @IsString()
  @MinLength(16, { message: 'webhookSecret must be at least 16 characters' })
  @MaxLength(256)
  webhookSecret!: string;

  /** Commit statuses back to the forge (optional). */
  @ApiPropertyOptional({ description: 'Forge to report commit statuses to', enum: FORGES })
  @IsOptional()
  @IsIn(FORGES, { message: 'forge must be one of github, gitlab, gitea' })
  forge?: (typeof FORGES)[number];

  @ApiPropertyOptional({ description: "The forge's API base URL" })
  @IsOptional()
  @IsString()
  @MaxLength(1024)
  forgeApiUrl?: string;

  /** owner/repo (GitHub, Gitea) or the GitLab project path; derived from `repo` when absent. */
  @ApiPropertyOptional({ description: 'owner/repo or the GitLab project path; default: derived from repo' })
  @IsOptional()
  @IsString()
  @MaxLength(512)
  forgeRepository?: string;

  /** Write-only: never returned. */
  @ApiPropertyOptional({ description: 'Token for commit statuses (write-only)', writeOnly: true })
  @IsOptional()
  @IsString()
  @MinLength(1)
  @MaxLength(1024)
  forgeToken?: string;
}

export class UpdateProjectDto extends PartialType(CreateProjectDto) {}

export class ListDeliveriesQuery {
  @ApiPropertyOptional({ type: 'integer', minimum: 1, maximum: 100, default: 50 })
  @IsOptional()
  @Matches(/^([1-9]|[1-9][0-9]|100)$/, { message: 'limit must be an integer from 1 to 100' })
  limit?: string;
}
