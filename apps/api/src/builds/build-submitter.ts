import { Inject, Injectable, Logger } from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import type { FlowJob, FlowProducer } from 'bullmq';
import { BuildRepository, IDEMPOTENCY_KEY_TTL_MS, type BuildWithPlatforms, type Db } from '@farm/db';
import type { ApiConfig } from '@farm/config';
import { flowForBuild, sealSecrets } from '@farm/queue';
import { ApiError } from '../common/api-error';
import { API_CONFIG, FLOW_PRODUCER } from '../tokens';
import type { ValidBuildRequest } from './build-request';
import { checkSameRequest, type Idempotency } from './idempotency';

/**
 * Stores a validated build at one commit and adds its flow. Shared by `POST /v1/builds` and the
 * webhooks, so both create builds the same way.
 */
@Injectable()
export class BuildSubmitter {
  private readonly logger = new Logger(BuildSubmitter.name);

  constructor(
    private readonly builds: BuildRepository,
    @Inject(FLOW_PRODUCER) private readonly flows: FlowProducer,
    @Inject(API_CONFIG) private readonly config: ApiConfig,
  ) {}

  /**
   * The build an earlier request with this idempotency key created, if the key is live (a 409
   * when that request was another one). Asked before the ref is resolved, so a retry costs no
   * git round trip and gets the commit the first request resolved.
   */
  async findEarlier(idempotency: Idempotency): Promise<BuildWithPlatforms | null> {
    const build = await this.builds.findByIdempotencyKey(idempotency.key, this.keysExpiredBefore());
    return build && checkSameRequest(build, idempotency);
  }

  /**
   * The flow is added before the transaction that stores the build commits: a failure to
   * enqueue rolls the build back, so nothing is left stored for a build that is not queued, and
   * no row is ever seen without its flow. Within the caller's transaction (`db`, webhooks) that
   * one is used; otherwise the build gets its own.
   *
   * With an idempotency key, the build and its flow are created in a transaction of their own
   * that holds the key (BuildRepository.createOnce): of two requests racing with the same key,
   * one creates the build and the other waits for it and answers with it.
   */
  async submit(
    request: ValidBuildRequest,
    commit: string,
    options: { projectId?: string; db?: Db; idempotency?: Idempotency } = {},
  ): Promise<BuildWithPlatforms> {
    if (options.idempotency) return this.submitOnce(request, commit, options.idempotency);
    const row = this.newBuild(randomUUID(), request, commit);
    const build = { ...row, projectId: options.projectId };
    // Made before the transaction opens, which then holds its connection only for the writes.
    const flow = flowForBuild(row, { platforms: row.platforms, retry: 0 });
    if (!options.db) return this.builds.createQueued(build, () => this.enqueue(row.id, flow));
    const created = await this.builds.create({ ...build, enqueuedAt: new Date() }, options.db);
    await this.enqueue(row.id, flow);
    return created;
  }

  private async submitOnce(request: ValidBuildRequest, commit: string, idempotency: Idempotency) {
    const id = randomUUID();
    const row = this.newBuild(id, request, commit);
    const flow = flowForBuild(row, { platforms: row.platforms, retry: 0 });
    const created = await this.builds.createOnce(
      {
        ...row,
        idempotencyKey: idempotency.key,
        idempotencyHash: idempotency.requestHash,
      },
      () => this.enqueue(id, flow),
    );
    if (created) return created;
    const earlier = await this.findEarlier(idempotency);
    // Taken a moment ago and gone already (deleted, or expired and released): rare enough to ask for a retry.
    if (!earlier) throw new ApiError('conflict', 'a request with this Idempotency-Key is in progress; try again');
    return earlier;
  }

  private keysExpiredBefore(): Date {
    return new Date(Date.now() - IDEMPOTENCY_KEY_TTL_MS);
  }

  /**
   * The build's secrets sealed for its agents (FARM_SECRETS_KEY), or undefined without any: the
   * row and the payloads hold only this, never the values.
   */
  private seal(id: string, request: ValidBuildRequest): string | undefined {
    if (Object.keys(request.secrets).length === 0) return undefined;
    if (!this.config.secretsKey) {
      throw new ApiError(
        'unprocessable',
        'this farm takes no build secrets: the api and the agents need FARM_SECRETS_KEY',
        'secrets',
      );
    }
    return sealSecrets(request.secrets, this.config.secretsKey, id);
  }

  /** The build's row: what is stored, and what its jobs are made from. */
  private newBuild(id: string, request: ValidBuildRequest, commit: string) {
    return {
      id,
      repo: request.repo,
      ref: request.ref,
      commit,
      dockerfile: request.dockerfile,
      context: request.context,
      contextDigest: request.contextDigest ?? null,
      target: request.target,
      tags: request.tags,
      buildArgs: request.buildArgs,
      secrets: this.seal(id, request) ?? null,
      labels: request.labels,
      platforms: request.platforms,
      requires: request.requires,
      scheduleTimeout: request.scheduleTimeout,
      noCache: request.noCache,
    };
  }

  /** Adds the build's flow; a 503 when Redis cannot take it. */
  private async enqueue(buildId: string, flow: FlowJob): Promise<void> {
    try {
      await this.flows.add(flow);
    } catch (error) {
      this.logger.error(`could not enqueue build ${buildId}: ${(error as Error).message}`);
      throw new ApiError('unavailable', 'the build queue is unavailable; nothing was stored, try again');
    }
  }
}
