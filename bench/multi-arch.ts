/**
 * `npm run bench`: a cold two-platform build (native + qemu-user emulated) through the farm and
 * by hand with the same tools, alternating, then where the farm's time goes. Prints a markdown
 * report and writes it to bench/results/latest.md. Exits non-zero only when something broke.
 *
 *   node dist/bench/multi-arch.js [--runs N] [--profile-runs N] [--hand-storage per-platform|shared]
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { loadavg, machine } from 'node:os';
import { join, relative } from 'node:path';
import { parseArgs } from 'node:util';
import { formatPlatform, platformFromMachine } from '@farm/domain';
import { repositoryRoot } from '../scripts/lib/repository-root';
import { pushBusyboxBase } from '../test/helpers/base-images';
import { createTestDatabase } from '../test/helpers/database';
import { startFarm, type AgentSpec } from '../test/helpers/farm';
import { createGitRepo } from '../test/helpers/git-repo';
import { startRegistry } from '../test/helpers/registry';
import { AgentProfiler } from './lib/agent-profile';
import { HandBuilder, tagDigest, type HandRun } from './lib/by-hand';
import { FarmClient, type FarmRun } from './lib/farm-run';
import { describeMachine } from './lib/machine';
import {
  figures,
  renderReport,
  verdictLine,
  SCENARIOS,
  TARGETS,
  type BenchResults,
  type Scenario,
  type ScenarioRuns,
} from './lib/report';
import { RssSampler } from './lib/rss';
import { ms } from './lib/stats';
import { positive } from './lib/args';

const PLATFORMS = ['linux/amd64', 'linux/arm64'];
const TARGET_RATIO = TARGETS.coldRatio;
const REDIS_URL = 'redis://127.0.0.1:6379';
/** Lets each side's leftovers (cleanup after a job, registry writes) finish before the next build. */
const SETTLE_MS = 300;

const progress = (line: string) => process.stderr.write(`${line}\n`);
const sleep = (msecs: number) => new Promise((resolve) => setTimeout(resolve, msecs));

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      runs: { type: 'string', default: '8' },
      'profile-runs': { type: 'string', default: '5' },
      'hand-storage': { type: 'string', default: 'per-platform' },
    },
  });
  const handStorage = values['hand-storage'];
  if (handStorage !== 'per-platform' && handStorage !== 'shared') {
    throw new Error('--hand-storage must be per-platform or shared');
  }
  const runs = positive(values.runs, '--runs');
  const profileRuns = values['profile-runs'] === '0' ? 0 : positive(values['profile-runs'], '--profile-runs');
  // Fewer runs are fine while developing the bench; the report says it is no measurement.
  if (runs < 5) progress(`bench: only ${runs} run(s) per figure: a smoke run, not a measurement (use at least 5)`);

  const startedAt = new Date();
  const startLoad = loadavg()[0];
  const invocation = ['node', relative(repositoryRoot(), process.argv[1]), ...process.argv.slice(2)].join(' ');
  const npmScript = process.env.npm_lifecycle_event;
  const command = npmScript ? `npm run ${npmScript} (${invocation})` : invocation;
  const machineInfo = await describeMachine();
  progress(`bench: ${command}`);
  progress(
    `bench: ${machineInfo.cpus} CPUs, ${machineInfo.memoryGiB} GiB, kernel ${machineInfo.kernel}, ${machineInfo.buildah}`,
  );

  const native = formatPlatform(platformFromMachine(machine()));
  const agents: AgentSpec[] = PLATFORMS.map((platform) =>
    platform === native
      ? { name: `bench-${platform.replace(/\//g, '-')}` }
      : { platform, emulated: true, name: `bench-qemu-${platform.replace(/\//g, '-')}` },
  );

  // Everything started is stopped in reverse order, whatever happens.
  const cleanups: (() => Promise<unknown>)[] = [];
  const cleanUp = async () => {
    for (const cleanup of cleanups.splice(0).reverse()) {
      await cleanup().catch((error: Error) => progress(`bench: cleanup failed: ${error.message}`));
    }
  };
  const interrupted = () => {
    progress('bench: interrupted, cleaning up');
    void cleanUp().finally(() => process.exit(130));
  };
  process.once('SIGINT', interrupted);
  process.once('SIGTERM', interrupted);

  try {
    progress('bench: starting registry, database, farm');
    const registry = await startRegistry();
    cleanups.push(() => registry.stop());
    const database = await createTestDatabase();
    cleanups.push(() => database.drop());
    const base = await pushBusyboxBase(registry.host);
    const repo = await createGitRepo({
      Dockerfile: `FROM ${base}\nRUN uname -m > /arch\nCOPY hello.txt /hello.txt\n`,
      'hello.txt': 'hello from the bench\n',
    });
    cleanups.push(() => repo.remove());
    const farm = await startFarm({ databaseUrl: database.url, agents });
    cleanups.push(() => farm.stop());
    const client = await FarmClient.connect(farm, REDIS_URL, PLATFORMS);
    cleanups.push(() => client.close());
    const hand = await HandBuilder.create(PLATFORMS, handStorage);
    cleanups.push(() => hand.remove());

    let commits = 0;
    /**
     * A commit every cached step misses: a RUN line never seen before (so both sides run it
     * again, native and emulated) and new content for the copied file.
     */
    const coldCommit = () => {
      const n = ++commits;
      return repo.commitFiles({
        Dockerfile: `FROM ${base}\nRUN echo ${n}-${Date.now()} > /nonce && uname -m > /arch\nCOPY hello.txt /hello.txt\n`,
        'hello.txt': `build ${n} at ${Date.now()}\n`,
      });
    };
    /** A commit that changes only the file the last step copies. */
    const oneFileCommit = () => repo.commitFiles({ 'hello.txt': `one-file change ${++commits} at ${Date.now()}\n` });

    const rss = new RssSampler(agents.map((agent) => farm.agent(agent.name ?? '')));
    const farmBuild = async (scenario: Scenario, name: string, commit: string): Promise<FarmRun> => {
      const tag = `bench-${scenario}-${name}`;
      rss.start();
      const run = await client
        .build({
          repoUrl: repo.url,
          commit,
          platforms: PLATFORMS,
          tags: [`${registry.host}/bench/farm:${tag}`],
        })
        .finally(() => rss.stop());
      const published = await tagDigest(registry.url, 'bench/farm', tag);
      if (!run.build.digest || published !== run.build.digest) {
        throw new Error(`farm build ${run.build.id}: tag ${tag} is ${published}, the build says ${run.build.digest}`);
      }
      progress(`bench: farm    ${scenario.padEnd(11)} ${name.padEnd(7)} ${ms(run.totalMs).padStart(5)} ms`);
      await sleep(SETTLE_MS);
      return run;
    };
    const handBuild = async (scenario: Scenario, name: string, commit: string): Promise<HandRun> => {
      const tag = `bench-${scenario}-${name}`;
      const checkout = scenario === 'cold' ? 'clone' : 'reuse';
      const request = { repoUrl: repo.url, commit, platforms: PLATFORMS, tag, checkout } as const;
      const run = await hand.build({ ...request, repository: `${registry.host}/bench/hand` }, `${scenario}-${name}`);
      const published = await tagDigest(registry.url, 'bench/hand', tag);
      if (published !== run.digest) throw new Error(`by hand: tag ${tag} is ${published}, pushed ${run.digest}`);
      progress(`bench: by hand ${scenario.padEnd(11)} ${name.padEnd(7)} ${ms(run.totalMs).padStart(5)} ms`);
      await sleep(SETTLE_MS);
      return run;
    };

    const agentIdleRss = rss.now();
    // The warm-ups pull the base image into every storage.
    const warmupCommit = await coldCommit();
    const farmWarmup = await farmBuild('cold', 'warmup', warmupCommit);
    const handWarmup = await handBuild('cold', 'warmup', warmupCommit);
    const scenarios: ScenarioRuns[] = SCENARIOS.map((scenario) => ({ scenario, farm: [], hand: [] }));
    const [cold, same, oneFile] = scenarios;
    for (let i = 1; i <= runs; i++) {
      // Alternate who goes first, so neither side always runs right after the other.
      const both = async (runs: ScenarioRuns, commit: string) => {
        const name = `run-${i}`;
        if (i % 2) {
          runs.farm.push(await farmBuild(runs.scenario, name, commit));
          runs.hand.push(await handBuild(runs.scenario, name, commit));
        } else {
          runs.hand.push(await handBuild(runs.scenario, name, commit));
          runs.farm.push(await farmBuild(runs.scenario, name, commit));
        }
      };
      const commit = await coldCommit();
      await both(cold, commit);
      await both(same, commit);
      await both(oneFile, await oneFileCommit());
    }
    const agentRss = { idle: agentIdleRss, building: rss.peak(), after: rss.now() };

    const profile: BenchResults['profile'] = [];
    if (profileRuns > 0) {
      progress('bench: profiling the agent steps');
      const profiler = await AgentProfiler.create(PLATFORMS, native, {
        repoUrl: repo.url,
        registryHost: registry.host,
        repository: 'bench/profile',
      });
      cleanups.push(() => profiler.remove());
      await profiler.build(await coldCommit());
      for (let i = 0; i < profileRuns; i++) {
        profile.push(await profiler.build(await coldCommit()));
        await sleep(SETTLE_MS);
      }
    }

    const results: BenchResults = {
      command,
      startedAt,
      machine: machineInfo,
      platforms: PLATFORMS,
      nativePlatform: native,
      target: TARGET_RATIO,
      handStorage,
      farmWarmup,
      handWarmup,
      farm: cold.farm,
      hand: cold.hand,
      scenarios,
      agentRss,
      profile,
      load: { start: startLoad, end: loadavg()[0] },
    };
    const report = renderReport(results);
    const resultsDir = join(repositoryRoot(), 'bench', 'results');
    await mkdir(resultsDir, { recursive: true });
    await writeFile(join(resultsDir, 'latest.md'), report);
    // For docs/PERFORMANCE.md (bench/performance-doc.ts).
    await writeFile(join(resultsDir, 'multi-arch.json'), JSON.stringify({ figures: figures(results) }, null, 2));
    process.stdout.write(`${report}\n`);
    progress(`bench: ${verdictLine(results)}; report written to bench/results/latest.md`);
  } finally {
    await cleanUp();
  }
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    progress(`bench: failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
    process.exit(1);
  },
);
