import { Inject, Injectable, Logger } from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import type { FlowProducer } from 'bullmq';
import { BuildRepository, type BuildWithPlatforms, type Db } from '@farm/db';
import { buildFlow } from '@farm/queue';
import { ApiError } from '../common/api-error';
import { FLOW_PRODUCER } from '../tokens';
import type { ValidBuildRequest } from './build-request';

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
  ) {}

  /**
   * Within a transaction (`db`), the flow is added before the transaction commits: a failure to
   * enqueue rolls the build back. Without one, a build whose flow could not be added is deleted
   * again. Either way nothing is left stored for a build that is not queued.
   */
  async submit(
    request: ValidBuildRequest,
    commit: string,
    options: { projectId?: string; db?: Db } = {},
  ): Promise<BuildWithPlatforms> {
    const id = randomUUID();
    const build = await this.builds.create(
      {
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
        requires: request.requires,
        scheduleTimeout: request.scheduleTimeout,
        projectId: options.projectId,
        // In a transaction the flow is added before it commits: the row is never seen unqueued.
        enqueuedAt: options.db ? new Date() : undefined,
      },
      options.db,
    );
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
          requires: request.requires,
          pushTo: request.pushTo,
        }),
      );
    } catch (error) {
      this.logger.error(`could not enqueue build ${id}: ${(error as Error).message}`);
      if (!options.db) await this.builds.delete(id);
      throw new ApiError('unavailable', 'the build queue is unavailable; nothing was stored, try again');
    }
    if (!options.db) await this.builds.markEnqueued(id);
    return build;
  }
}
