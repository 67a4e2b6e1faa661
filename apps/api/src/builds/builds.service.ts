import { Inject, Injectable } from '@nestjs/common';
import type { Redis } from 'ioredis';
import type { ApiConfig } from '@farm/config';
import { BuildRepository } from '@farm/db';
import { GitError, RefNotFoundError, resolveRef } from '@farm/git';
import { readLogText } from '@farm/queue';
import { ApiError } from '../common/api-error';
import { API_CONFIG, REDIS } from '../tokens';
import { validateBuildRequest, validatePlatform } from './build-request';
import { BuildSubmitter } from './build-submitter';
import { toBuildView, type BuildView } from './build.view';
import type { CreateBuildDto, ListBuildsQuery } from './create-build.dto';

@Injectable()
export class BuildsService {
  constructor(
    private readonly builds: BuildRepository,
    private readonly submitter: BuildSubmitter,
    @Inject(REDIS) private readonly redis: Redis,
    @Inject(API_CONFIG) private readonly config: ApiConfig,
  ) {}

  /**
   * Validates, resolves the ref to one commit (so every platform builds the same source),
   * stores the build and adds its flow. Nothing is stored or queued for a bad request.
   */
  async create(dto: CreateBuildDto): Promise<BuildView> {
    const request = validateBuildRequest(dto, { allowFileRepos: this.config.allowFileRepos });
    const commit = request.commit ?? (await this.resolveCommit(request.repo, request.ref ?? 'HEAD'));
    return toBuildView(await this.submitter.submit(request, commit));
  }

  async get(id: string): Promise<BuildView> {
    return toBuildView(await this.findOrThrow(id));
  }

  async list(query: ListBuildsQuery): Promise<{ builds: BuildView[]; nextCursor: string | null }> {
    const limit = query.limit ? Number(query.limit) : 20;
    const builds = await this.builds.list({ status: query.status, repo: query.repo, cursor: query.cursor, limit });
    return {
      builds: builds.map(toBuildView),
      nextCursor: builds.length === limit ? builds[builds.length - 1].id : null,
    };
  }

  /** One platform's log, or every platform's with each line tagged by its platform. */
  async logs(id: string, platform?: string): Promise<string> {
    const build = await this.findOrThrow(id);
    let wanted = build.platforms;
    if (platform !== undefined) {
      const name = validatePlatform(platform, 'platform');
      wanted = build.platforms.filter((p) => p.platform === name);
      if (wanted.length === 0) throw new ApiError('not_found', `build ${id} has no platform ${name}`, 'platform');
    }
    const texts = await Promise.all(
      wanted.map(async (p) => p.log ?? (await readLogText(this.redis, this.config.queuePrefix, id, p.platform))),
    );
    if (platform !== undefined) return texts[0];
    return wanted
      .map((p, i) =>
        texts[i]
          .split('\n')
          .filter(Boolean)
          .map((line) => `[${p.platform}] ${line}\n`)
          .join(''),
      )
      .join('');
  }

  private async findOrThrow(id: string) {
    const build = /^[0-9a-f-]{36}$/.test(id) ? await this.builds.find(id) : null;
    if (!build) throw new ApiError('not_found', `build ${id} not found`);
    return build;
  }

  private async resolveCommit(repo: string, ref: string): Promise<string> {
    try {
      return await resolveRef(repo, ref, { allowFile: this.config.allowFileRepos, timeoutMs: 30_000 });
    } catch (error) {
      if (error instanceof RefNotFoundError) {
        throw new ApiError('unprocessable', `ref "${ref}" does not exist in ${repo}`, 'ref');
      }
      if (error instanceof GitError) {
        throw new ApiError('unprocessable', `cannot read ${repo}: ${error.message}`, 'repo');
      }
      throw error;
    }
  }
}
