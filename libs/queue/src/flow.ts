import type { FlowJob } from 'bullmq';
import { buildQueueName, PLATFORM_BUILD_JOB, PUBLISH_JOB, PUBLISH_QUEUE, platformJobId, publishJobId } from './names';
import { PLATFORM_BUILD_JOB_OPTIONS, PUBLISH_JOB_OPTIONS } from './job-options';
import type { PlatformBuildJob, PublishJob } from './payloads';

/** What the flow needs to know about a build. */
export interface BuildForFlow extends Omit<PlatformBuildJob, 'platform'> {
  platforms: string[];
}

/**
 * The flow for one build: a `publish` parent that runs once every platform child has ended,
 * and one child per platform on that platform's queue. Every child builds the same commit.
 */
export function buildFlow(build: BuildForFlow): FlowJob {
  const { platforms, ...common } = build;
  const publish: PublishJob = { buildId: build.buildId, pushTo: build.pushTo };
  return {
    name: PUBLISH_JOB,
    queueName: PUBLISH_QUEUE,
    data: publish,
    opts: { ...PUBLISH_JOB_OPTIONS, jobId: publishJobId(build.buildId) },
    children: platforms.map((platform) => {
      const data: PlatformBuildJob = { ...common, platform };
      return {
        name: PLATFORM_BUILD_JOB,
        queueName: buildQueueName(platform, build.requires),
        data,
        opts: { ...PLATFORM_BUILD_JOB_OPTIONS, jobId: platformJobId(build.buildId, platform) },
      };
    }),
  };
}
