/**
 * `npm run bench`, last step: docs/PERFORMANCE.md from the reports the benches just wrote
 * (bench/results/*.md and their *.json figures): every figure against its target in one
 * table, then each report in full, with the machine and the exact commands.
 *
 *   node dist/bench/performance-doc.js --seconds N   (N: how long the whole bench took)
 */
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { repositoryRoot } from '../scripts/lib/repository-root';
import { describeMachine } from './lib/machine';
import { figuresTable, type Figure } from './lib/report';

const REPORTS = [
  { markdown: 'latest.md', figures: 'multi-arch.json' },
  { markdown: 'load.md', figures: 'load.json' },
  { markdown: 'hooks.md' },
];

/** What the agents cache and why, next to the figures it explains (kept with the generator). */
const CACHES = [
  '## Caches on the agents',
  '',
  '- **Layer cache**: each agent keeps its buildah storage between jobs (`<state dir>/agents/<name>/storage`,',
  '  only work dirs and leftover containers are removed) and builds with `--layers`, so a rebuild reruns only',
  '  the steps from the first changed one; by hand uses the same flag in this bench. The storage grows with the',
  '  steps built: the agent prunes it when its disk fills (see cache pruning below).',
  '- **Git mirror**: one bare mirror per repository (`<state dir>/agents/<name>/git/<sha256(url)>.git`, one',
  '  lock per mirror); a job fetches only a commit the mirror lacks (`--depth=1`, full fetch if the server',
  '  refuses a SHA) and checks it out into a fresh dir that borrows the mirror objects (alternates): no copy,',
  '  no network for a known commit. Mirrors never drop objects (`gc.auto=0`).',
  '- **Result cache**: an agent that built a job with exactly the same inputs (everything in the job but its',
  '  build id and push target, plus platform and emulation) answers with that image, after checking it is in',
  '  the target repository or mounting it there from the repository it was pushed to; otherwise it builds.',
  '  This is what the same-commit figure measures.',
  '- **Blobs**: the push skips blobs the target repository has (HEAD) and mounts the base layers from the',
  "  Dockerfile's FROM repositories on the same registry (`POST /v2/<name>/blobs/uploads/?mount=&from=`)",
  '  instead of uploading them.',
  '- **Registry layer cache (`--cache-to/--cache-from`)**: built, opt-in per agent (the agents of a pool share',
  '  the setting): `FARM_REGISTRY_CACHE=<registry>/<repository prefix>`, e.g. `registry.example.com/buildfarm/cache`.',
  '  Each platform gets a repository of its own, `<prefix>/buildcache-<os>-<arch>[-<variant>]`, so per-platform',
  '  caches never overwrite each other. bud then runs with `--layers --cache-from <repo> --cache-to <repo>` (a',
  "  `noCache` job reads nothing from it but refreshes it, as it refreshes the local storage), with the job's",
  '  registries.conf (a loopback cache registry is reached over plain HTTP, others when in',
  "  `FARM_INSECURE_REGISTRIES`) and the agent's `FARM_REGISTRY_AUTH` credentials. buildah 1.28's `--cache-to`",
  '  fails with an OCI-layout output, so with the cache bud tags the image in storage',
  '  (`localhost/farm-job/<buildId>-<platform>`), `buildah push --format oci --compression-format gzip` copies it',
  '  into the layout the farm pushes, and `buildah rmi` drops the name (the layers stay; names a killed agent',
  '  left are removed at its next start). A cache registry that is down makes buildah retry (3 x 2 s) and then',
  '  fail the build at the first cache push: the agent then builds again without the cache (reusing the steps',
  '  already in storage) and leaves the cache out for 5 minutes. Without the setting nothing changes. Local and',
  '  SSH builders (for SSH, the registry as the builder host reaches it). Measured by hand on this machine',
  '  (shared with other work, so +-150 ms; medians of 3-8 runs; fresh storage stands for a fresh agent), with',
  "  the agent's commands: `buildah --root <fresh> bud --isolation chroot --platform linux/amd64 --format oci",
  '  --layers --disable-compression=false --label ... --tag localhost/farm-job/j --cache-from R --cache-to R`',
  '  (measured while the labels were still bud steps; they are now set in the pushed config),',
  '  then the push and rmi above, against the same bud with `--tag oci:<dir>:image` alone. Sample Dockerfile:',
  '  a cold build 700 ms without, 1,020 ms with `--cache-to` (empty cache); a fresh agent at the next commit',
  "  770 ms with the cache (the sample's RUN is too cheap to win; 620 ms with `--cache-from` alone). With a",
  '  RUN step of 2 s: a fresh agent 3.0 s without the cache, 1.0 s with it (3.5 s for the cold build that',
  '  fills it). An agent that keeps its storage pays ~250 ms per build (280 -> 530 ms at the next commit: the',
  '  tag, push and rmi, plus pushing the new steps). So it pays off for pools of short-lived agents and',
  '  expensive steps, not in the steady state this bench measures, and stays off by default. Cache',
  "  repositories grow by a tag per new step result: prune them with the registry's own tools.",
  "- **Cache affinity**: after a success an agent records itself as the repository's affine agent for the",
  '  platform (`<prefix>:affinity:<platform>:<sha256(repo)>`, 7 days). Agents pull from a shared queue, so a',
  '  job cannot be addressed to one of them: an agent that takes a job whose affine agent is another one,',
  '  online, serving its platform and labels and with a free slot (its heartbeat presence; never from a native',
  '  agent to an emulating one), puts the job back at the head of the queue once (SET NX per job) and keeps its',
  '  own slot for up to 50 ms so the affine agent, idle and so blocked on the queue, takes it. A busy affine',
  '  agent is never waited for; if the handed-over job is not taken (the agent just got busy or died), the next',
  '  agent to take it builds it. Measured with two idle agents (the scenario of `test/e2e/cache-affinity.spec.ts`',
  '  stretched to 20 rebuilds of one repository): 20/20 on the affine agent, each taken within 5-13 ms (median 6).',
  '  `noCache` builds and uploaded contexts skip it (no cache to be near).',
  "- **Cache pruning** (kubelet's image GC thresholds): after each job the agent reads the usage of the",
  '  filesystem holding its state dir (one `statfs`, ~20 µs here; used / (used + available), as `df` counts it).',
  '  Above `FARM_CACHE_PRUNE_HIGH_PERCENT` (85) it prunes, least loss first, until the disk is below',
  '  `FARM_CACHE_PRUNE_LOW_PERCENT` (70) or nothing is left: result-cache records not hit for 30 days (tiny,',
  '  one per distinct job), then git mirrors least recently used first (each checkout sets its mtime; a',
  '  mirror goes by rename, then delete), then `buildah rmi --prune` (the intermediate images: later builds',
  '  run their steps again), then `buildah rmi --all --force` (base images are pulled again). It logs what',
  '  each step freed (statfs before and after). Only when the job that ended was the only one running (the',
  "  storage is shared; a job taken meanwhile waits for the prune, as for a canceled build's leftovers), and",
  '  nothing a job set up uses is touched. An agent busy in all its slots all the time never gets that',
  '  moment. The SSH builder offers nothing (its storage is on its host): only the local records go.',
  '',
];

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { seconds: { type: 'string' } } });
  const root = repositoryRoot();
  const results = join(root, 'bench', 'results');
  const machine = await describeMachine();
  const figures: Figure[] = [];
  const sections: string[] = [];
  for (const report of REPORTS) {
    const file = join(results, report.markdown);
    if (!existsSync(file)) {
      sections.push(`(no ${report.markdown}: that bench failed or did not run)`, '');
      continue;
    }
    // One level down: the document has its own title.
    sections.push((await readFile(file, 'utf8')).replace(/^(#+) /gm, '#$1 '), '');
    if (report.figures && existsSync(join(results, report.figures))) {
      figures.push(
        ...(JSON.parse(await readFile(join(results, report.figures), 'utf8')) as { figures: Figure[] }).figures,
      );
    }
  }
  const hooks = existsSync(join(results, 'hooks.md')) ? await readFile(join(results, 'hooks.md'), 'utf8') : '';
  const throughput = /- throughput: (.*)/.exec(hooks)?.[1];
  if (throughput) {
    figures.push({
      name: '6. webhook deliveries/s (push webhook, see below)',
      value: throughput,
      target: '-',
      pass: true,
    });
  }
  figures.sort((a, b) => a.name.localeCompare(b.name, 'en', { numeric: true }));
  const doc = [
    '# Performance',
    '',
    'Generated by `npm run bench` (scripts/bench.sh): do not edit by hand, run it again.',
    '',
    `- machine: ${machine.cpus} CPUs (${machine.cpuModel}), ${machine.memoryGiB} GiB memory, kernel ${machine.kernel}`,
    `- tools: ${machine.buildah}, node ${machine.node}`,
    `- date: ${new Date().toISOString()}`,
    ...(values.seconds ? [`- the whole bench took ${Math.round(Number(values.seconds))} s`] : []),
    '- exact commands: see each section; `npm run bench -- --runs N` sets the runs per build figure (at least 5',
    '  for a measurement; fewer make a smoke run), `BENCH_QUEUED=N` the depth of the queue test',
    '',
    '## Every figure against its target',
    '',
    ...figuresTable(figures),
    '',
    ...CACHES,
    ...sections,
  ].join('\n');
  await mkdir(join(root, 'docs'), { recursive: true });
  await writeFile(join(root, 'docs', 'PERFORMANCE.md'), doc);
  process.stderr.write('bench: docs/PERFORMANCE.md written\n');
}

main().catch((error: unknown) => {
  process.stderr.write(`performance doc: failed: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
