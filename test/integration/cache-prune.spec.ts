import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, rm, stat, utimes } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { promisify } from 'node:util';
import { Queue, type Job } from 'bullmq';
import { loadAgentConfig } from '@farm/config';
import { GitMirrors } from '@farm/git';
import { RegistryClient } from '@farm/oci';
import { agentQueueNames, createRedisConnection, type PlatformBuildJob, type PlatformBuildResult } from '@farm/queue';
import { Agent as FarmAgent } from '../../apps/agent/src/agent';
import type { Builder, BuildContext, BuiltImage } from '../../apps/agent/src/builders/builder';
import {
  CachePruningBuilder,
  diskUsage,
  type PruneReport,
  type PruneThresholds,
} from '../../apps/agent/src/builders/cache-pruner';
import { LocalBuildahBuilder } from '../../apps/agent/src/builders/local-buildah.builder';
import { ResultCachingBuilder, STALE_RESULT_DAYS } from '../../apps/agent/src/builders/result-cache';
import { pushBusyboxBase } from '../helpers/base-images';
import { createGitRepo, type TestGitRepo } from '../helpers/git-repo';
import { startRedisServer, type TestRedisServer } from '../helpers/redis-server';
import { requireFileInImage } from '../helpers/image-files';
import { startRegistry, type TestRegistry } from '../helpers/registry';

/**
 * Cache pruning (FARM_CACHE_PRUNE_HIGH_PERCENT / _LOW_PERCENT) with real buildah, git and a real
 * registry. Builders are stacked as the agent's main.ts stacks them and driven as the agent drives
 * them: setup, run, destroy, then pruneCaches once no job runs. The disk of this machine is what
 * it is, so "full" is played by thresholds below its usage. The Dockerfile's RUN step writes a
 * random UUID: equal stamps in two images mean the second build reused the step.
 */

jest.setTimeout(180_000);
const run = promisify(execFile);

let registry: TestRegistry;
let client: RegistryClient;
let state: string;
let repo: TestGitRepo;
let secondCommit: string;
/** Another repository, built before `repo`: its mirror is the least recently used one. */
let otherRepo: TestGitRepo;
const builders: LocalBuildahBuilder[] = [];

beforeAll(async () => {
  state = await mkdtemp(join(tmpdir(), 'farm-cache-prune-'));
  registry = await startRegistry();
  client = new RegistryClient({});
  const base = await pushBusyboxBase(registry.host);
  repo = await createGitRepo({
    // busybox's date has no %N: a random UUID tells runs of the step apart.
    Dockerfile: `FROM ${base}\nRUN cat /proc/sys/kernel/random/uuid > /stamp\nCOPY hello.txt /hello.txt\n`,
    'hello.txt': 'one\n',
  });
  secondCommit = await repo.commitFiles({ 'hello.txt': 'two\n' });
  otherRepo = await createGitRepo({ Dockerfile: `FROM ${base}\nCOPY other.txt /other.txt\n`, 'other.txt': 'x\n' });
});

afterAll(async () => {
  // Unmounts what a failed build may have left before the state dirs go.
  for (const builder of builders) await builder.removeLeftovers().catch(() => undefined);
  await registry?.stop();
  await repo?.remove();
  await otherRepo?.remove();
  if (state) await rm(state, { recursive: true, force: true });
});

interface Agent {
  stateDir: string;
  /** The builder the agent hands its jobs: pruning, result caching, local buildah. */
  builder: CachePruningBuilder;
  log: string[];
}

/** A fresh agent's builder stack (main.ts), with the given thresholds. */
function freshAgent(thresholds: PruneThresholds): Agent {
  const stateDir = join(state, `agent-${randomBytes(4).toString('hex')}`);
  const local = new LocalBuildahBuilder({
    platform: { os: 'linux', architecture: 'amd64' },
    emulated: false,
    stateDir,
    allowFileRepos: true,
    registry: client,
    insecureRegistries: [],
  });
  builders.push(local);
  const log: string[] = [];
  const resultCaching = new ResultCachingBuilder(local, join(stateDir, 'results'), client, (line) => log.push(line));
  const builder = new CachePruningBuilder(resultCaching, {
    dir: stateDir,
    ...thresholds,
    log: (line) => log.push(line),
  });
  return { stateDir, builder, log };
}

function jobFor(commit: string, repoUrl = repo.url): PlatformBuildJob {
  return {
    buildId: `b-${randomBytes(6).toString('hex')}`,
    platform: 'linux/amd64',
    repo: repoUrl,
    commit,
    dockerfile: 'Dockerfile',
    context: '.',
    buildArgs: {},
    labels: {},
    pushTo: { registry: registry.host, repository: `app/${randomBytes(4).toString('hex')}` },
  };
}

const context = (): BuildContext => ({ signal: new AbortController().signal, log: () => undefined });

/** One job as the agent runs it, without the prune that follows it. */
async function build(agent: Agent, job: PlatformBuildJob): Promise<{ repository: string; digest: string }> {
  try {
    await agent.builder.setup(job, context());
    const image = await agent.builder.run(job, context());
    return { repository: job.pushTo.repository, digest: image.digest };
  } finally {
    await agent.builder.destroy(job);
  }
}

/** The file's content in the pushed image; fails when no layer has it. */
const fileIn = (image: { repository: string; digest: string }, path: string) =>
  requireFileInImage(client, registry.host, image, path);

/** `buildah images --all` on the agent's storage: every image, intermediate ones (`<none>`) too. */
async function allImages(agent: Agent): Promise<string[]> {
  const storage = ['--root', join(agent.stateDir, 'storage'), '--runroot', join(agent.stateDir, 'run')];
  const { stdout } = await run('buildah', [
    ...storage,
    '--storage-driver',
    'overlay',
    'images',
    '--all',
    '--noheading',
    '--format',
    '{{.Name}}',
  ]);
  return stdout.split('\n').filter(Boolean);
}

async function mirrorsOf(agent: Agent): Promise<string[]> {
  return (await readdir(join(agent.stateDir, 'git')).catch(() => [] as string[])).sort();
}

function mirrorName(agent: Agent, repoUrl: string): string {
  return basename(new GitMirrors(join(agent.stateDir, 'git')).mirrorPath(repoUrl));
}

/** What a prune removed, git mirrors by their dir name. */
function removedIn(report: PruneReport | undefined): string[] {
  return (report?.removed ?? []).map(({ what }) => what.replace(/^git mirror (\S+) \(last used .*\)$/, 'mirror $1'));
}

describe('cache pruning', () => {
  test('on a full disk, after a job: git mirrors least recently used first, then the layer cache', async () => {
    const agent = freshAgent({ highPercent: 1, lowPercent: 1 });
    await build(agent, jobFor(otherRepo.commit, otherRepo.url));
    const first = await build(agent, jobFor(repo.commit));
    const stamp = await fileIn(first, 'stamp');
    const images = await allImages(agent);
    expect(images.filter((name) => name === '<none>').length).toBeGreaterThan(0);
    expect(images.some((name) => name.endsWith('/base/busybox'))).toBe(true);
    expect(await mirrorsOf(agent)).toEqual([mirrorName(agent, otherRepo.url), mirrorName(agent, repo.url)].sort());

    const report = await agent.builder.prune();
    expect(removedIn(report)).toEqual([
      `result-cache records not used for ${STALE_RESULT_DAYS} days`,
      `mirror ${mirrorName(agent, otherRepo.url)}`,
      `mirror ${mirrorName(agent, repo.url)}`,
      'the layer cache (buildah rmi --prune: untagged and intermediate images)',
      'every image, base images too (buildah rmi --all --force)',
    ]);
    expect(await allImages(agent)).toEqual([]);
    expect(await mirrorsOf(agent)).toEqual([]);
    // The records are fresh: they stay (two builds, two records).
    expect(await readdir(join(agent.stateDir, 'results'))).toHaveLength(2);
    expect(agent.log.some((line) => /cache prune: removed the layer cache .*: [\d.]+ k?M?G?B freed/.test(line))).toBe(
      true,
    );
    expect(agent.log.at(-1)).toMatch(/cache prune: 5 removed, .* freed in .*, nothing more to prune$/);

    // The next commit checks out and pulls again, and runs the RUN step again.
    const second = await build(agent, jobFor(secondCommit));
    expect(await fileIn(second, 'hello.txt')).toBe('two\n');
    expect(await fileIn(second, 'stamp')).not.toBe(stamp);
  });

  test('with the default thresholds on this machine nothing is pruned and the step is reused', async () => {
    const thresholds = loadAgentConfig({}).cachePrune;
    expect(thresholds).toEqual({ highPercent: 85, lowPercent: 70 });
    const agent = freshAgent(thresholds);
    // The premise: this machine's disk is not that full.
    expect((await diskUsage(state)).usedPercent).toBeLessThanOrEqual(thresholds.highPercent);

    const first = await build(agent, jobFor(repo.commit));
    const images = await allImages(agent);
    expect(await agent.builder.prune()).toBeUndefined();
    expect(await allImages(agent)).toEqual(images);
    expect(await mirrorsOf(agent)).toEqual([mirrorName(agent, repo.url)]);
    expect(agent.log).toEqual([]);

    const second = await build(agent, jobFor(secondCommit));
    expect(await fileIn(second, 'hello.txt')).toBe('two\n');
    expect(await fileIn(second, 'stamp')).toBe(await fileIn(first, 'stamp'));
  });

  test('what a job set up and not yet destroyed uses stays: its mirror, and the storage', async () => {
    const agent = freshAgent({ highPercent: 1, lowPercent: 1 });
    const first = await build(agent, jobFor(repo.commit));
    await build(agent, jobFor(otherRepo.commit, otherRepo.url));
    const images = await allImages(agent);
    // A checkout marks its mirror used, even one that fetches nothing (a build arg makes it a new job).
    const otherMirror = join(agent.stateDir, 'git', mirrorName(agent, otherRepo.url));
    const longAgo = new Date('2020-01-01T00:00:00Z');
    await utimes(otherMirror, longAgo, longAgo);
    const checkout = { ...jobFor(otherRepo.commit, otherRepo.url), buildArgs: { UNUSED: '1' } };
    const lines: string[] = [];
    await agent.builder.setup(checkout, { ...context(), log: (line) => lines.push(line) });
    await agent.builder.destroy(checkout);
    expect(lines).toContain(`checking out ${otherRepo.url} at ${otherRepo.commit}`);
    expect(lines.filter((line) => /fetch/.test(line))).toEqual([]);
    expect((await stat(otherMirror)).mtime.getTime()).toBeGreaterThan(longAgo.getTime());

    const job = jobFor(secondCommit);
    try {
      await agent.builder.setup(job, context());
      const report = await agent.builder.prune();
      expect(removedIn(report)).toEqual([
        `result-cache records not used for ${STALE_RESULT_DAYS} days`,
        `mirror ${mirrorName(agent, otherRepo.url)}`,
      ]);
      expect(await mirrorsOf(agent)).toEqual([mirrorName(agent, repo.url)]);
      expect(await allImages(agent)).toEqual(images);
      const second = await agent.builder.run(job, context());
      expect(await fileIn({ repository: job.pushTo.repository, digest: second.digest }, 'stamp')).toBe(
        await fileIn(first, 'stamp'),
      );
    } finally {
      await agent.builder.destroy(job);
    }
    await agent.builder.prune();
    expect(await allImages(agent)).toEqual([]);
    expect(await mirrorsOf(agent)).toEqual([]);
  });
});

/**
 * The agent's builder with a gate in front of its prune, so the test can hold a prune while
 * another job is taken; it records when jobs are set up and prunes run.
 */
class GatedPrune implements Builder {
  readonly platform: Builder['platform'];
  readonly emulated: boolean;
  readonly events: string[] = [];
  release!: () => void;
  private readonly gate = new Promise<void>((resolve) => (this.release = resolve));

  constructor(private readonly inner: CachePruningBuilder) {
    this.platform = inner.platform;
    this.emulated = inner.emulated;
  }

  async setup(job: PlatformBuildJob, context: BuildContext): Promise<void> {
    this.events.push(`setup ${job.buildId}`);
    await this.inner.setup(job, context);
  }

  run(job: PlatformBuildJob, context: BuildContext): Promise<BuiltImage> {
    return this.inner.run(job, context);
  }

  destroy(job: PlatformBuildJob): Promise<void> {
    return this.inner.destroy(job);
  }

  async pruneCaches(): Promise<void> {
    this.events.push('prune');
    await this.gate;
    await this.inner.pruneCaches();
    this.events.push('pruned');
  }
}

async function until(condition: () => Promise<boolean> | boolean, what: string): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`gave up waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe('cache pruning in the agent', () => {
  let redisServer: TestRedisServer;
  let agent: FarmAgent | undefined;
  let queue: Queue | undefined;
  const connections: ReturnType<typeof createRedisConnection>[] = [];

  beforeAll(async () => {
    redisServer = await startRedisServer();
  });

  afterAll(async () => {
    await agent?.shutdown(0);
    await queue?.close();
    connections.forEach((connection) => connection.disconnect());
    await redisServer?.stop();
  });

  test('after a job, while no other job runs; a job taken meanwhile waits for the prune to end', async () => {
    const stack = freshAgent({ highPercent: 1, lowPercent: 1 });
    const builder = new GatedPrune(stack.builder);
    const redis = createRedisConnection(redisServer.url);
    connections.push(redis);
    const prefix = `prune-${randomBytes(4).toString('hex')}`;
    // Two slots: the second job is taken while the first one's prune runs.
    agent = new FarmAgent({
      name: 'pruner',
      version: 'test',
      queuePrefix: prefix,
      concurrency: 2,
      labels: [],
      backend: 'local',
      redis,
      builder,
      log: (line) => stack.log.push(line),
    });
    await agent.start();
    const queueConnection = redis.duplicate();
    connections.push(queueConnection);
    queue = new Queue(agentQueueNames('linux/amd64', [])[0]!, { connection: queueConnection, prefix });
    const finished = async (job: Job) => ['completed', 'failed'].includes(await job.getState());

    const firstJob = jobFor(repo.commit);
    const first = await queue.add('build', firstJob);
    await until(() => builder.events.includes('prune'), 'the first prune');
    const secondJob = jobFor(secondCommit);
    const second = await queue.add('build', secondJob);
    await until(async () => (await second.getState()) === 'active', 'the second job to be taken');
    // Time for the second job to go as far as it may while the prune is held: not to its setup.
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(builder.events).toEqual([`setup ${firstJob.buildId}`, 'prune']);
    // The prune follows the job: the first job was reported done before it, so its build went on.
    expect(await first.getState()).toBe('completed');

    builder.release();
    await until(() => finished(second), 'the second job');
    await until(() => builder.events.length === 6, 'the prune after the second job');
    expect(await second.getState()).toBe('completed');
    expect(builder.events).toEqual([
      `setup ${firstJob.buildId}`,
      'prune',
      'pruned',
      `setup ${secondJob.buildId}`,
      'prune',
      'pruned',
    ]);
    expect(stack.log.filter((line) => /^cache prune: \d+ removed/.test(line))).toHaveLength(2);
    expect(await allImages(stack)).toEqual([]);
    // The layer cache was gone when the second job built: its RUN step ran again.
    const results = await Promise.all(
      [first, second].map(async (job) => (await queue!.getJob(job.id!))!.returnvalue as PlatformBuildResult),
    );
    const stamps = await Promise.all(
      results.map((result, i) =>
        fileIn({ repository: [firstJob, secondJob][i]!.pushTo.repository, digest: result.digest }, 'stamp'),
      ),
    );
    expect(stamps[1]).not.toBe(stamps[0]);
  });
});
