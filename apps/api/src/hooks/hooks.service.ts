import { Inject, Injectable, Logger } from '@nestjs/common';
import { createHash, randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { ApiConfig } from '@farm/config';
import { encodeAgentEvent, eventStreamKey } from '@farm/queue';
import { BuildRepository, ProjectRepository, type DeliveryAnswer, type Db, type Project } from '@farm/db';
import { matchesRefFilter, renderTagTemplates, TagTemplateError } from '@farm/domain';
import {
  deliveryInfo,
  isForge,
  parsePushEvent,
  verifyWebhookSignature,
  WebhookPayloadError,
  type Forge,
  type PushIntent,
} from '@farm/git';
import { ApiError } from '../common/api-error';
import { validateBuildRequest } from '../builds/build-request';
import { BuildSubmitter } from '../builds/build-submitter';
import { API_CONFIG, REDIS } from '../tokens';

type Headers = Record<string, string | string[] | undefined>;

export interface HookAnswer {
  status: number;
  body: Record<string, unknown>;
  replayed: boolean;
}

/**
 * Push webhooks: a verified push becomes a build of exactly the pushed commit, tagged by the
 * project's templates. The hook answers without waiting for git or the build.
 */
@Injectable()
export class HooksService {
  private readonly logger = new Logger(HooksService.name);

  constructor(
    private readonly projects: ProjectRepository,
    private readonly builds: BuildRepository,
    private readonly submitter: BuildSubmitter,
    @Inject(REDIS) private readonly redis: Redis,
    @Inject(API_CONFIG) private readonly config: ApiConfig,
  ) {}

  async deliver(projectId: string, forgeName: string, rawBody: Buffer, headers: Headers): Promise<HookAnswer> {
    const forge: Forge | undefined = isForge(forgeName) ? forgeName : undefined;
    if (!forge) throw new ApiError('not_found', `unknown forge "${forgeName}" (github, gitlab or gitea)`);
    const project = /^[0-9a-f-]{36}$/.test(projectId) ? await this.projects.find(projectId) : null;
    if (!project) throw new ApiError('not_found', `project ${projectId} not found`);

    if (!verifyWebhookSignature(forge, project.webhookSecret, rawBody, headers)) {
      // Nothing of a refused delivery is stored but a counter; the log line names no body.
      await this.projects.countRejectedDelivery(project.id);
      this.logger.warn(`refused a ${forge} delivery to project ${project.name}: bad or missing signature`);
      throw new ApiError('unauthorized', `bad or missing ${forge} webhook signature`);
    }

    const info = deliveryInfo(forge, headers);
    const delivery = {
      id: randomUUID(),
      projectId: project.id,
      forge,
      // Forges that send no delivery id are deduplicated by their exact body.
      deliveryId: info.deliveryId ?? `sha256:${createHash('sha256').update(rawBody).digest('hex')}`,
      event: info.event,
    };

    let intent: PushIntent;
    try {
      intent = parsePushEvent(forge, info.event ?? '', parseBody(rawBody, headers));
    } catch (error) {
      const invalid = error instanceof SyntaxError || error instanceof WebhookPayloadError;
      if (!invalid) throw error;
      const answer = answerWith('invalid', 400, `malformed ${forge} delivery: ${(error as Error).message}`);
      const { answer: recorded, replayed } = await this.projects.recordDeliveryOnce(delivery, async () => answer);
      return { status: recorded.httpStatus, body: recorded.response, replayed };
    }

    const pushed = intent.kind === 'push' ? { ref: intent.ref, commit: intent.commit } : {};
    const { answer, replayed } = await this.projects.recordDeliveryOnce({ ...delivery, ...pushed }, (db) =>
      this.decide(project, intent, db),
    );
    if (answer.buildId && !replayed) await this.announce(answer.buildId);
    return { status: answer.httpStatus, body: answer.response, replayed };
  }

  /** Tells the coordinator (after the build's transaction committed) so the forge sees "pending" at once. */
  private async announce(buildId: string): Promise<void> {
    const event = encodeAgentEvent({ type: 'build.accepted', buildId, at: new Date().toISOString() });
    await this.redis
      .xadd(eventStreamKey(this.config.queuePrefix), '*', ...event)
      .catch((error: Error) => this.logger.warn(`could not announce build ${buildId}: ${error.message}`));
  }

  private async decide(project: Project, intent: PushIntent, db: Db): Promise<DeliveryAnswer> {
    if (intent.kind === 'ping') return answerWith('ping', 200, 'pong: the webhook reaches the farm');
    if (intent.kind === 'ignore') return answerWith('ignored', 200, intent.reason);

    const filters = intent.refType === 'branch' ? project.branches : project.tagsFilter;
    if (!matchesRefFilter(intent.name, filters)) {
      const which = intent.refType === 'branch' ? 'branches' : 'tagsFilter';
      return answerWith('ignored', 200, `${intent.refType} ${intent.name} does not match the project's ${which}`);
    }

    let tags: string[];
    try {
      tags = renderTagTemplates(project.tags, {
        refType: intent.refType,
        name: intent.name,
        commit: intent.commit,
        defaultBranch: intent.defaultBranch,
      });
    } catch (error) {
      if (!(error instanceof TagTemplateError)) throw error;
      return answerWith('failed', 422, error.message);
    }
    if (tags.length === 0) {
      return answerWith('ignored', 200, `no tag template applies to ${intent.refType} ${intent.name}`);
    }

    let request;
    try {
      request = validateBuildRequest(
        {
          repo: project.repo,
          ref: intent.ref,
          commit: intent.commit,
          dockerfile: project.dockerfile,
          context: project.context,
          platforms: project.platforms,
          tags: tags.map((tag) => `${project.image}:${tag}`),
          buildArgs: project.buildArgs as Record<string, string>,
        },
        { allowFileRepos: this.config.allowFileRepos },
      );
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      return answerWith('failed', 422, error.message);
    }
    // Gitea sends both `push` and `create` for a new tag, under different delivery ids: the
    // second one joins the first build instead of starting another.
    const existing = await this.builds.findActiveProjectBuild(project.id, intent.ref, intent.commit, db);
    if (existing) {
      const reason = `${intent.ref} at ${intent.commit} is already being built`;
      return {
        outcome: 'duplicate',
        reason,
        buildId: existing.id,
        httpStatus: 200,
        response: { outcome: 'duplicate', reason, buildId: existing.id, commit: intent.commit },
      };
    }
    const build = await this.submitter.submit(request, intent.commit, { projectId: project.id, db });
    return {
      outcome: 'build',
      buildId: build.id,
      httpStatus: 202,
      response: { outcome: 'build', buildId: build.id, commit: intent.commit, tags: request.tags },
    };
  }
}

/** Refused deliveries (400, 422) answer with the documented error body; the outcome is recorded. */
function answerWith(outcome: string, httpStatus: number, reason: string): DeliveryAnswer {
  if (httpStatus >= 400) {
    const code = httpStatus === 422 ? 'unprocessable' : 'invalid_request';
    return { outcome, reason, httpStatus, response: { error: { code, message: reason } } };
  }
  return { outcome, reason, httpStatus, response: { outcome, reason } };
}

/** JSON, or GitHub's form encoding (`payload=<json>`) when the hook was set up that way. */
function parseBody(rawBody: Buffer, headers: Headers): unknown {
  const type = String(headers['content-type'] ?? '');
  const text = rawBody.toString('utf8');
  if (type.includes('application/x-www-form-urlencoded')) {
    const payload = new URLSearchParams(text).get('payload');
    if (payload === null) throw new WebhookPayloadError('form body without a payload field');
    return JSON.parse(payload);
  }
  return JSON.parse(text);
}
