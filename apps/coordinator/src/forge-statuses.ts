import { Inject, Injectable, Logger, type OnApplicationShutdown } from '@nestjs/common';
import type { CoordinatorConfig } from '@farm/config';
import { BuildRepository, ProjectRepository, type Project } from '@farm/db';
import {
  ForgeStatusReporter,
  MANIFEST_STATUS_CONTEXT,
  platformStatusContext,
  repositoryFromCloneUrl,
  type CommitState,
  type ForgeTarget,
} from '@farm/forge';
import { COORDINATOR_CONFIG } from './tokens';

type Report = { context: string; state: CommitState; description: string };

/** Builds remembered as having no project; the oldest is forgotten past this many. */
const PROJECTLESS_REMEMBERED = 10_000;

/**
 * Commit statuses back to the forge for builds of projects that have a forge token: one per
 * platform (`buildfarm/linux-arm64`) and one for the published index (`buildfarm/manifest`).
 *
 * Reports of one build are sent in order (pending before success), and never block or fail the
 * build: a forge that is down costs a log line.
 */
@Injectable()
export class ForgeStatuses implements OnApplicationShutdown {
  private readonly logger = new Logger(ForgeStatuses.name);
  private readonly reporter = new ForgeStatusReporter();
  private readonly queues = new Map<string, Promise<void>>();
  /**
   * Builds without a project (POST /v1/builds): nothing to report, ever (a build never gains a
   * project). Remembered so their half a dozen events cost one lookup, not one read each.
   */
  private readonly projectless = new Set<string>();

  constructor(
    private readonly builds: BuildRepository,
    private readonly projects: ProjectRepository,
    @Inject(COORDINATOR_CONFIG) private readonly config: CoordinatorConfig,
  ) {}

  async onApplicationShutdown(): Promise<void> {
    await Promise.all(this.queues.values());
  }

  /** A build was accepted, or retried: pending for every platform it (re)builds and the index. */
  accepted(buildId: string): void {
    this.enqueue(buildId, async (build) => [
      ...build.platforms
        .filter((p) => p.status !== 'succeeded')
        .map((p) => ({
          context: platformStatusContext(p.platform),
          state: 'pending' as const,
          description: `queued for ${p.platform}`,
        })),
      { context: MANIFEST_STATUS_CONTEXT, state: 'pending', description: 'waiting for every platform' },
    ]);
  }

  platformStarted(buildId: string, platform: string, agent: string, emulated: boolean): void {
    const how = emulated ? ' (emulated)' : '';
    this.enqueue(buildId, async () => [
      { context: platformStatusContext(platform), state: 'pending', description: `building on ${agent}${how}` },
    ]);
  }

  platformEnded(buildId: string, platform: string, succeeded: boolean, error?: string): void {
    this.enqueue(buildId, async () => [
      {
        context: platformStatusContext(platform),
        state: succeeded ? 'success' : 'failure',
        description: succeeded ? `built ${platform}` : `failed: ${error ?? 'unknown error'}`,
      },
    ]);
  }

  /** A build was canceled: its unfinished platforms and the index say so (an error, not a failure). */
  canceled(buildId: string, platforms: string[]): void {
    this.enqueue(buildId, async () => [
      ...platforms.map((platform) => ({
        context: platformStatusContext(platform),
        state: 'error' as const,
        description: 'canceled',
      })),
      { context: MANIFEST_STATUS_CONTEXT, state: 'error', description: 'canceled: not published' },
    ]);
  }

  buildFinished(buildId: string, published: boolean, detail: string): void {
    this.enqueue(buildId, async () => [
      { context: MANIFEST_STATUS_CONTEXT, state: published ? 'success' : 'failure', description: detail },
    ]);
  }

  private enqueue(
    buildId: string,
    reports: (build: NonNullable<Awaited<ReturnType<BuildRepository['findWithoutLogs']>>>) => Promise<Report[]>,
  ): void {
    const previous = this.queues.get(buildId) ?? Promise.resolve();
    const next = previous
      .then(async () => {
        if (!(await this.hasProject(buildId))) return;
        // Without the platforms' archived logs (up to 1 MiB each): only their states are needed.
        const build = await this.builds.findWithoutLogs(buildId);
        if (!build?.projectId) return;
        const project = await this.projects.find(build.projectId);
        const target = project && this.target(project);
        if (!target) return;
        for (const report of await reports(build)) {
          await this.reporter.report(target, {
            commit: build.commit,
            ...report,
            targetUrl: `${this.config.publicUrl}/v1/builds/${build.id}`,
          });
        }
      })
      .catch((error: Error) => this.logger.warn(`commit status for build ${buildId}: ${error.message}`))
      .finally(() => {
        if (this.queues.get(buildId) === next) this.queues.delete(buildId);
      });
    this.queues.set(buildId, next);
  }

  /** Whether the build has a project: a one-column read, none for a build known to have none. */
  private async hasProject(buildId: string): Promise<boolean> {
    if (this.projectless.has(buildId)) return false;
    const projectId = await this.builds.projectIdOf(buildId);
    if (projectId === null) {
      if (this.projectless.size >= PROJECTLESS_REMEMBERED) {
        this.projectless.delete(this.projectless.values().next().value!);
      }
      this.projectless.add(buildId);
    }
    return !!projectId;
  }

  private target(project: Project): ForgeTarget | undefined {
    if (!project.forge || !project.forgeToken || !project.forgeApiUrl) return undefined;
    return {
      forge: project.forge,
      apiUrl: project.forgeApiUrl,
      repository: project.forgeRepository ?? repositoryFromCloneUrl(project.repo),
      token: project.forgeToken,
    };
  }
}
