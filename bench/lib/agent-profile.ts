import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { formatPlatform, parsePlatform } from '@farm/domain';
import { RegistryClient } from '@farm/oci';
import type { PlatformBuildJob } from '@farm/queue';
import { LocalBuildahBuilder } from '../../apps/agent/src/builders/local-buildah.builder';

/** Milliseconds per agent step for one platform of one build. */
export interface AgentSteps {
  /** setup(): fresh work dir, git init + shallow fetch of the commit + checkout. */
  clone: number;
  /** run() up to buildah bud: paths checked, registries.conf written. */
  prepare: number;
  /** `buildah bud`, up to its last line. */
  bud: number;
  /**
   * A separate `buildah push oci:<work dir>` after bud (compresses every layer into a fresh OCI
   * layout), or null when bud commits straight into the layout.
   */
  pushOci: number | null;
  /** RegistryClient.pushOciLayout: blobs the registry lacks, then the manifest by digest. */
  upload: number;
  /** destroy(): what the builder removes after the job (the work dir). */
  destroy: number;
  total: number;
}

export interface ProfileTarget {
  repoUrl: string;
  registryHost: string;
  repository: string;
}

/** buildah prints the new image's full ID as the last line of a `bud` into local storage. */
const IMAGE_ID_LINE = /^[0-9a-f]{64}$/;

/**
 * Runs the agent's real LocalBuildahBuilder in this process, one per platform (arm64 emulated,
 * as the farm's agents are), and times each step from the builder's own log lines. Storage is
 * kept between builds, as in an agent.
 */
export class AgentProfiler {
  private constructor(
    private readonly stateDir: string,
    private readonly builders: LocalBuildahBuilder[],
    private readonly target: ProfileTarget,
  ) {}

  static async create(platforms: string[], nativePlatform: string, target: ProfileTarget): Promise<AgentProfiler> {
    const stateDir = await mkdtemp(join(tmpdir(), 'farm-bench-profile-'));
    const registry = new RegistryClient();
    const builders = platforms.map(
      (platform) =>
        new LocalBuildahBuilder({
          platform: parsePlatform(platform),
          emulated: platform !== nativePlatform,
          stateDir: join(stateDir, platform.replace(/\//g, '-')),
          allowFileRepos: true,
          registry,
          insecureRegistries: [],
        }),
    );
    return new AgentProfiler(stateDir, builders, target);
  }

  /** Builds `commit` on every platform in parallel; the steps of each, in platform order. */
  build(commit: string): Promise<AgentSteps[]> {
    const buildId = randomUUID();
    return Promise.all(this.builders.map((builder) => this.buildOne(builder, buildId, commit)));
  }

  async remove(): Promise<void> {
    await rm(this.stateDir, { recursive: true, force: true });
  }

  private async buildOne(builder: LocalBuildahBuilder, buildId: string, commit: string): Promise<AgentSteps> {
    const job: PlatformBuildJob = {
      buildId,
      platform: formatPlatform(builder.platform),
      repo: this.target.repoUrl,
      commit,
      dockerfile: 'Dockerfile',
      context: '.',
      buildArgs: {},
      labels: {},
      pushTo: { registry: this.target.registryHost, repository: this.target.repository },
    };
    const marks: Record<string, number> = {};
    const log = (line: string) => {
      const now = performance.now();
      if (line.startsWith('building ')) marks.building = now;
      else if (IMAGE_ID_LINE.test(line)) marks.built = now;
      else if (line.startsWith('pushing to ')) marks.uploading = now;
      else if (line.startsWith('pushed ')) marks.pushed = now;
    };
    const context = { signal: new AbortController().signal, log };
    const started = performance.now();
    let destroyed = started;
    try {
      await builder.setup(job, context);
      marks.setUp = performance.now();
      await builder.run(job, context);
    } finally {
      const destroying = performance.now();
      await builder.destroy(job);
      destroyed = performance.now();
      marks.destroy = destroyed - destroying;
    }
    for (const mark of ['setUp', 'building', 'uploading', 'pushed']) {
      if (marks[mark] === undefined) throw new Error(`the builder never logged the "${mark}" step`);
    }
    return {
      clone: marks.setUp - started,
      prepare: marks.building - marks.setUp,
      bud: (marks.built ?? marks.uploading) - marks.building,
      pushOci: marks.built === undefined ? null : marks.uploading - marks.built,
      upload: marks.pushed - marks.uploading,
      destroy: marks.destroy,
      total: destroyed - started,
    };
  }
}
