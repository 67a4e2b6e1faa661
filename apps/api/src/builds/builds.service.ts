import { Inject, Injectable, Logger } from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import type { FlowProducer } from 'bullmq';
import type { Redis } from 'ioredis';
import type { ApiConfig } from '@farm/config';
import { BuildRepository } from '@farm/db';
import { formatImageReference, formatPlatform, parsePlatform, parseTagReference } from '@farm/domain';
import { GitError, RefNotFoundError, resolveRef, validateRefName, validateRepoPath, validateRepoUrl } from '@farm/git';
import { buildFlow, readLogText } from '@farm/queue';
import { ApiError } from '../common/api-error';
import { API_CONFIG, FLOW_PRODUCER, REDIS } from '../tokens';
import { toBuildView, type BuildView } from './build.view';
import type { CreateBuildDto, ListBuildsQuery } from './create-build.dto';

const BUILD_ARG_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const LABEL_KEY = /^[A-Za-z0-9][A-Za-z0-9._/-]*$/;

/** A build request whose fields all passed validation, in canonical form. */
interface ValidBuildRequest {
  repo: string;
  ref: string | null;
  commit?: string;
  dockerfile: string;
  context: string;
  target: string | null;
  platforms: string[];
  tags: string[];
  buildArgs: Record<string, string>;
  labels: Record<string, string>;
  pushTo: { registry: string; repository: string };
}

@Injectable()
export class BuildsService {
  private readonly logger = new Logger(BuildsService.name);

  constructor(
    private readonly builds: BuildRepository,
    @Inject(FLOW_PRODUCER) private readonly flows: FlowProducer,
    @Inject(REDIS) private readonly redis: Redis,
    @Inject(API_CONFIG) private readonly config: ApiConfig,
  ) {}

  /**
   * Validates, resolves the ref to one commit (so every platform builds the same source),
   * stores the build and adds its flow. Nothing is stored or queued for a bad request, and a
   * build whose flow could not be added is removed again.
   */
  async create(dto: CreateBuildDto): Promise<BuildView> {
    const request = this.validate(dto);
    const commit = request.commit ?? (await this.resolveCommit(request.repo, request.ref ?? 'HEAD'));
    const id = randomUUID();
    const build = await this.builds.create({
      id,
      repo: request.repo,
      ref: request.ref,
      commit,
      dockerfile: request.dockerfile,
      context: request.context,
      target: request.target,
      tags: request.tags,
      buildArgs: request.buildArgs,
      labels: request.labels,
      platforms: request.platforms,
    });
    try {
      await this.flows.add(
        buildFlow({
          buildId: id,
          platforms: request.platforms,
          repo: request.repo,
          commit,
          dockerfile: request.dockerfile,
          context: request.context,
          ...(request.target ? { target: request.target } : {}),
          buildArgs: request.buildArgs,
          labels: request.labels,
          pushTo: request.pushTo,
        }),
      );
    } catch (error) {
      this.logger.error(`could not enqueue build ${id}: ${(error as Error).message}`);
      await this.builds.delete(id);
      throw new ApiError('unavailable', 'the build queue is unavailable; nothing was stored, try again');
    }
    await this.builds.markEnqueued(id);
    return toBuildView(build);
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
      const name = this.platformField(platform, 'platform');
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

  private validate(dto: CreateBuildDto): ValidBuildRequest {
    const repo = this.check('repo', () => validateRepoUrl(dto.repo, { allowFile: this.config.allowFileRepos }));
    const ref = dto.ref === undefined ? null : this.check('ref', () => validateRefName(dto.ref as string));
    const platforms = dto.platforms.map((p, i) => this.platformField(p, `platforms[${i}]`));
    const duplicate = platforms.find((p, i) => platforms.indexOf(p) !== i);
    if (duplicate) throw new ApiError('invalid_request', `platform ${duplicate} is listed twice`, 'platforms');
    const references = dto.tags.map((tag, i) => this.check(`tags[${i}]`, () => parseTagReference(tag)));
    const tags = references.map((reference) => formatImageReference(reference));
    return {
      repo,
      ref,
      commit: dto.commit,
      dockerfile: this.check('dockerfile', () => validateRepoPath(dto.dockerfile ?? 'Dockerfile', 'dockerfile')),
      context: this.check('context', () => validateRepoPath(dto.context ?? '.', 'context')),
      target: dto.target ?? null,
      platforms,
      tags: [...new Set(tags)],
      buildArgs: this.stringMap(dto.buildArgs, 'buildArgs', BUILD_ARG_NAME),
      labels: this.stringMap(dto.labels, 'labels', LABEL_KEY),
      pushTo: { registry: references[0].registry, repository: references[0].repository },
    };
  }

  private platformField(value: string, field: string): string {
    return this.check(field, () => formatPlatform(parsePlatform(value)));
  }

  private stringMap(value: Record<string, string> | undefined, field: string, keyPattern: RegExp) {
    const map: Record<string, string> = {};
    for (const [key, item] of Object.entries(value ?? {})) {
      if (!keyPattern.test(key) || key.length > 128) {
        throw new ApiError('invalid_request', `${field} has an invalid name "${key.slice(0, 64)}"`, `${field}.${key}`);
      }
      if (typeof item !== 'string' || item.length > 8192) {
        throw new ApiError(
          'invalid_request',
          `${field}.${key} must be a string of at most 8192 characters`,
          `${field}.${key}`,
        );
      }
      map[key] = item;
    }
    return map;
  }

  /** Runs a domain validator and turns its error into a 400 naming the field. */
  private check<T>(field: string, validate: () => T): T {
    try {
      return validate();
    } catch (error) {
      // The validators throw only for invalid input (InvalidPlatformError, InvalidReferenceError,
      // InvalidRepoUrlError, ...), each with a message meant for the client.
      if (error instanceof ApiError || !(error instanceof Error)) throw error;
      throw new ApiError('invalid_request', `${field}: ${error.message}`, field);
    }
  }
}
