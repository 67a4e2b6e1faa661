import { Inject, Injectable, type BeforeApplicationShutdown } from '@nestjs/common';
import type { Response } from 'express';
import type { Redis } from 'ioredis';
import type { ApiConfig } from '@farm/config';
import { BuildRepository, type BuildWithPlatforms } from '@farm/db';
import { GitError, RefNotFoundError, resolveRef } from '@farm/git';
import { addLogContext } from '@farm/logging';
import { readLogText, readProgress } from '@farm/queue';
import { ApiError } from '../common/api-error';
import { API_CONFIG, REDIS } from '../tokens';
import { validateBuildRequest, validatePlatform } from './build-request';
import { BuildSubmitter } from './build-submitter';
import { ContextStore } from '../contexts/context-store';
import { callerKey, requestHash, validateIdempotencyKey } from './idempotency';
import { toBuildView, type BuildView } from './build.view';
import { LogFollower } from './log-follower';
import type { CreateBuildDto, ListBuildsQuery } from './create-build.dto';

/**
 * Name of the Redis connections that follow logs (`CLIENT LIST`): one per following client,
 * closed when the client goes away.
 */
export function logFollowConnectionName(queuePrefix: string): string {
  return `${queuePrefix}:api:logs`;
}

@Injectable()
export class BuildsService implements BeforeApplicationShutdown {
  /** Clients following logs, whose streams end when the api shuts down. */
  private readonly followers = new Set<LogFollower>();

  constructor(
    private readonly builds: BuildRepository,
    private readonly submitter: BuildSubmitter,
    private readonly contexts: ContextStore,
    @Inject(REDIS) private readonly redis: Redis,
    @Inject(API_CONFIG) private readonly config: ApiConfig,
  ) {}

  /**
   * Validates, resolves the ref to one commit (so every platform builds the same source),
   * stores the build and adds its flow. Nothing is stored or queued for a bad request. With an
   * idempotency key, a repeated request answers with the build the first one created.
   */
  async create(dto: CreateBuildDto, idempotencyKey?: { key: string; caller: string }): Promise<BuildView> {
    const key = validateIdempotencyKey(idempotencyKey?.key);
    const request = validateBuildRequest(dto, { allowFileRepos: this.config.allowFileRepos });
    const idempotency =
      key === undefined
        ? undefined
        : { key: callerKey(idempotencyKey!.caller, key), requestHash: requestHash(request) };
    const earlier = idempotency && (await this.submitter.findEarlier(idempotency));
    if (earlier) {
      addLogContext({ buildId: earlier.id });
      return toBuildView(earlier);
    }
    // An uploaded context has no commit; it must be in the context store before agents look for it.
    if (request.contextDigest) await this.contexts.requireUploaded(request.contextDigest);
    const commit = request.contextDigest
      ? ''
      : (request.commit ?? (await this.resolveCommit(request.repo, request.ref ?? 'HEAD')));
    const build = await this.submitter.submit(request, commit, { idempotency });
    // The request's log lines (and its closing line) name the build they created.
    addLogContext({ buildId: build.id });
    return toBuildView(build);
  }

  /** The build, with what agents say its running platforms are doing (step N of M, pushing). */
  async get(id: string): Promise<BuildView> {
    // The view shows no archived log (up to 1 MiB per platform): not read.
    const build = await this.findOrThrow(id, { withLogs: false });
    if (!build.platforms.some((p) => p.status === 'running')) return toBuildView(build);
    // Progress is a nicety: without Redis the build is still shown.
    const progress = await readProgress(this.redis, this.config.queuePrefix, id).catch(() => undefined);
    return toBuildView(build, progress);
  }

  async list(query: ListBuildsQuery): Promise<{ builds: BuildView[]; nextCursor: string | null }> {
    const limit = query.limit ? Number(query.limit) : 20;
    const builds = await this.builds.list({ status: query.status, repo: query.repo, cursor: query.cursor, limit });
    return {
      builds: builds.map((build) => toBuildView(build)),
      nextCursor: builds.length === limit ? builds[builds.length - 1].id : null,
    };
  }

  /** One platform's log, or every platform's with each line tagged by its platform. */
  async logs(id: string, platform?: string): Promise<string> {
    const build = await this.findOrThrow(id);
    const wanted = this.selectPlatforms(build, platform);
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

  /**
   * Streams the log of one platform or all of them as Server-Sent Events until the build ends
   * (see LogFollower), resuming after `lastEventId` when the client reconnects.
   */
  async followLogs(
    id: string,
    platform: string | undefined,
    lastEventId: string | undefined,
    response: Response,
  ): Promise<void> {
    const build = await this.findOrThrow(id);
    const platforms = this.selectPlatforms(build, platform).map((p) => p.platform);
    // Its own connection, as XREAD BLOCK holds it; not reconnected: the client resumes instead.
    const redis = this.redis.duplicate({
      connectionName: logFollowConnectionName(this.config.queuePrefix),
      retryStrategy: () => null,
    });
    // Failures surface as rejected commands; without a listener ioredis would print each one.
    redis.on('error', () => undefined);
    const follower = new LogFollower({
      redis,
      prefix: this.config.queuePrefix,
      build,
      platforms,
      lastEventId,
      reload: () => this.builds.findWithoutLogs(id),
      response,
    });
    response.on('close', () => follower.stop());
    try {
      await follower.prepare();
    } catch {
      const clientLeft = follower.stopped;
      follower.stop();
      if (clientLeft) return;
      throw new ApiError('unavailable', 'the log stream is unavailable (Redis unreachable); try again');
    }
    this.followers.add(follower);
    try {
      await follower.run();
    } finally {
      this.followers.delete(follower);
    }
  }

  /** Open log streams would hold the HTTP server open: they end first (the client may resume). */
  beforeApplicationShutdown(): void {
    this.followers.forEach((follower) => follower.stop());
  }

  private selectPlatforms(build: BuildWithPlatforms, platform: string | undefined) {
    if (platform === undefined) return build.platforms;
    const name = validatePlatform(platform, 'platform');
    const wanted = build.platforms.filter((p) => p.platform === name);
    if (wanted.length === 0) throw new ApiError('not_found', `build ${build.id} has no platform ${name}`, 'platform');
    return wanted;
  }

  private async findOrThrow(id: string, { withLogs = true } = {}) {
    const valid = /^[0-9a-f-]{36}$/.test(id);
    const build = !valid ? null : withLogs ? await this.builds.find(id) : await this.builds.findWithoutLogs(id);
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
