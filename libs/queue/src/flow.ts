import type { FlowJob } from 'bullmq';
import { parseTagReference } from '@farm/domain';
import { buildQueueName, PLATFORM_BUILD_JOB, PUBLISH_JOB, PUBLISH_QUEUE, platformJobId, publishJobId } from './names';
import { PLATFORM_BUILD_JOB_OPTIONS, PUBLISH_JOB_OPTIONS } from './job-options';
import type { PlatformBuildJob, PublishJob } from './payloads';

/** What the flow needs to know about a build. */
export interface BuildForFlow extends Omit<PlatformBuildJob, 'platform'> {
  /** The platforms this run builds: all of them at first, those that did not succeed on a retry. */
  platforms: string[];
}

/**
 * The flow for one run of a build: a `publish` parent that runs once every platform child has
 * ended, and one child per platform on that platform's queue. Every child builds the same commit.
 * A retry (`retry` > 0) builds only some platforms; its parent reuses the others' results.
 */
export function buildFlow(build: BuildForFlow): FlowJob {
  const { platforms, ...common } = build;
  const retry = build.retry ?? 0;
  const publish: PublishJob = {
    buildId: build.buildId,
    pushTo: build.pushTo,
    ...(retry > 0 ? { retry, platforms } : {}),
  };
  return {
    name: PUBLISH_JOB,
    queueName: PUBLISH_QUEUE,
    data: publish,
    opts: { ...PUBLISH_JOB_OPTIONS, jobId: publishJobId(build.buildId, retry) },
    children: platforms.map((platform) => {
      const data: PlatformBuildJob = { ...common, platform };
      return {
        name: PLATFORM_BUILD_JOB,
        queueName: buildQueueName(platform, build.requires),
        data,
        opts: { ...PLATFORM_BUILD_JOB_OPTIONS, jobId: platformJobId(build.buildId, platform, retry) },
      };
    }),
  };
}

/** A build as stored in PostgreSQL (or about to be): everything its jobs are made from. */
export interface StoredBuild {
  id: string;
  repo: string;
  commit: string;
  dockerfile: string;
  context: string;
  contextDigest: string | null;
  target: string | null;
  buildArgs: unknown;
  /** Sealed (FARM_SECRETS_KEY), as stored: only agents open them. */
  secrets: string | null;
  labels: unknown;
  requires: string[];
  noCache: boolean;
  tags: string[];
}

/**
 * The flow of one run of a stored build: the first run builds every platform, a retry those
 * that did not succeed. The only place a build row becomes job payloads, so the API's submit
 * and retry and the coordinator's reconciler cannot drift apart.
 */
export function flowForBuild(build: StoredBuild, run: { platforms: string[]; retry: number }): FlowJob {
  const pushTo = parseTagReference(build.tags[0]);
  return buildFlow({
    buildId: build.id,
    platforms: run.platforms,
    repo: build.repo,
    commit: build.commit,
    dockerfile: build.dockerfile,
    context: build.context,
    ...(build.contextDigest ? { contextDigest: build.contextDigest } : {}),
    ...(build.target ? { target: build.target } : {}),
    buildArgs: build.buildArgs as Record<string, string>,
    ...(build.secrets ? { secrets: build.secrets } : {}),
    labels: build.labels as Record<string, string>,
    requires: build.requires,
    ...(build.noCache ? { noCache: true } : {}),
    pushTo: { registry: pushTo.registry, repository: pushTo.repository },
    ...(run.retry > 0 ? { retry: run.retry } : {}),
  });
}
