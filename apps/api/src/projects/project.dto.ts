import { PartialType } from '@nestjs/mapped-types';
import {
  ArrayMaxSize,
  ArrayMinSize,
  IsArray,
  IsIn,
  IsObject,
  IsOptional,
  IsString,
  Matches,
  MaxLength,
  MinLength,
} from 'class-validator';

export const FORGES = ['github', 'gitlab', 'gitea'] as const;

/** `POST /v1/projects`. Meanings (URLs, platforms, templates, filters) are checked in ProjectsService. */
export class CreateProjectDto {
  @IsString()
  @Matches(/^[a-z0-9][a-z0-9._-]{0,62}$/, {
    message: 'name must be 1-63 lowercase letters, digits, ".", "_" or "-", starting with a letter or digit',
  })
  name!: string;

  @IsString()
  @MinLength(1)
  @MaxLength(2048)
  repo!: string;

  /** A repository without tag: registry.example.com/team/app */
  @IsString()
  @MinLength(1)
  @MaxLength(512)
  image!: string;

  @IsArray()
  @ArrayMinSize(1, { message: 'platforms must list at least one platform' })
  @ArrayMaxSize(16)
  @IsString({ each: true })
  @MaxLength(64, { each: true })
  platforms!: string[];

  @IsArray()
  @ArrayMinSize(1, { message: 'tags must list at least one tag template' })
  @ArrayMaxSize(32)
  @IsString({ each: true })
  @MaxLength(128, { each: true })
  tags!: string[];

  @IsOptional()
  @IsArray()
  @ArrayMaxSize(64)
  @IsString({ each: true })
  @MaxLength(255, { each: true })
  branches?: string[];

  @IsOptional()
  @IsArray()
  @ArrayMaxSize(64)
  @IsString({ each: true })
  @MaxLength(255, { each: true })
  tagsFilter?: string[];

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

  @IsOptional()
  @IsObject()
  buildArgs?: Record<string, string>;

  /** Write-only: never returned. */
  @IsString()
  @MinLength(16, { message: 'webhookSecret must be at least 16 characters' })
  @MaxLength(256)
  webhookSecret!: string;

  /** Commit statuses back to the forge (optional). */
  @IsOptional()
  @IsIn(FORGES, { message: 'forge must be one of github, gitlab, gitea' })
  forge?: (typeof FORGES)[number];

  @IsOptional()
  @IsString()
  @MaxLength(1024)
  forgeApiUrl?: string;

  /** owner/repo (GitHub, Gitea) or the GitLab project path; derived from `repo` when absent. */
  @IsOptional()
  @IsString()
  @MaxLength(512)
  forgeRepository?: string;

  /** Write-only: never returned. */
  @IsOptional()
  @IsString()
  @MinLength(1)
  @MaxLength(1024)
  forgeToken?: string;
}

export class UpdateProjectDto extends PartialType(CreateProjectDto) {}

export class ListDeliveriesQuery {
  @IsOptional()
  @Matches(/^([1-9]|[1-9][0-9]|100)$/, { message: 'limit must be an integer from 1 to 100' })
  limit?: string;
}
