/**
 * `npm run bench`, second part: how long the GitHub push webhook takes to answer. A farm with no
 * agents (api + coordinator: every build stays queued, the hook's answer is what is measured)
 * gets the real `push` fixture, signed as GitHub signs it, with a new delivery id each time:
 * sequentially, then several in flight, then replays of delivery ids it has already answered.
 * Each phase has a time budget, so the whole bench stays under 2 minutes: on a loaded machine a
 * phase stops early and the report says how many requests it made. Prints a markdown report and
 * writes it to bench/results/hooks.md. Exits non-zero when something broke (a wrong answer, a
 * duplicate build, a request stuck for 10 s), not on a missed target.
 *
 *   node dist/bench/hooks.js [--deliveries N] [--concurrency N] [--replays N]
 */
import { execFile } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { loadavg } from 'node:os';
import { join, relative } from 'node:path';
import { parseArgs, promisify } from 'node:util';
import { Client } from 'pg';
import { createRedisConnection } from '@farm/queue';
import { repositoryRoot } from '../scripts/lib/repository-root';
import { createTestDatabase } from '../test/helpers/database';
import { startFarm } from '../test/helpers/farm';
import { createGitRepo } from '../test/helpers/git-repo';
import { startRegistry } from '../test/helpers/registry';
import { forgeHeaders } from '../test/helpers/webhooks';
import { describeMachine, type MachineInfo } from './lib/machine';
import { percentile } from './lib/stats';
import { positive } from './lib/args';

const TARGET_P99_MS = 100;
const WARMUP = 50;
/**
 * How long each phase may take at most. With about 10 s to start and stop the farm, the bench
 * stays under 2 minutes; on a quiet machine every phase ends well before its budget.
 */
const BUDGETS_MS = { warmup: 15_000, baseline: 4_000, sequential: 40_000, concurrent: 30_000, replay: 8_000 };
/** One answer slower than this means the api is stuck, not slow: the bench fails. */
const REQUEST_TIMEOUT_MS = 10_000;
/** Fewer sequential deliveries than this (cut by the budget) make no meaningful p99. */
const MIN_FOR_P99 = 100;
/** Enough to show the framework's floor under the hook's own work. */
const BASELINE_REQUESTS = 200;
const FIXTURE = 'test/fixtures/webhooks/github/push-branch-created.json';
const REDIS_URL = 'redis://127.0.0.1:6379';

const run = promisify(execFile);
const progress = (line: string) => process.stderr.write(`${line}\n`);

/** One delivery as the forge saw it. */
interface Answer {
  /** Request sent -> whole answer read, in milliseconds. */
  ms: number;
  status: number;
  replayed: boolean;
  buildId?: string;
}

/** Latencies of one phase (milliseconds) and how long the phase took. */
interface Phase {
  latencies: number[];
  wallMs: number;
  /** Requests the phase was to make; more than `latencies.length` when it ran out of time. */
  planned: number;
  budgetMs: number;
}

interface HookResults {
  command: string;
  startedAt: Date;
  machine: MachineInfo;
  /** The commit the api was built from, and whether apps/ or libs/ differed from it. */
  revision: string;
  load: { start: number; end: number };
  concurrency: number;
  warmup: Phase;
  healthz: Phase;
  readyz: Phase;
  sequential: Phase;
  concurrent: Phase;
  replay: Phase;
  /** Builds and delivery rows the project has at the end, counted in PostgreSQL. */
  stored: { builds: number; deliveries: number };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      deliveries: { type: 'string', default: '1000' },
      concurrency: { type: 'string', default: '8' },
      replays: { type: 'string', default: '200' },
    },
  });
  const deliveries = positive(values.deliveries, '--deliveries');
  const concurrency = positive(values.concurrency, '--concurrency');
  const replays = positive(values.replays, '--replays');
  if (replays > deliveries) throw new Error('--replays must not exceed --deliveries (each replays a different one)');

  const startedAt = new Date();
  const startLoad = loadavg()[0];
  const invocation = ['node', relative(repositoryRoot(), process.argv[1]), ...process.argv.slice(2)].join(' ');
  const npmScript = process.env.npm_lifecycle_event;
  const command = npmScript ? `npm run ${npmScript} (${invocation})` : invocation;
  const [machine, revision] = await Promise.all([describeMachine(), describeRevision()]);
  progress(`hooks bench: ${command}`);

  const cleanups: (() => Promise<unknown>)[] = [];
  const cleanUp = async () => {
    for (const cleanup of cleanups.splice(0).reverse()) {
      await cleanup().catch((error: Error) => progress(`hooks bench: cleanup failed: ${error.message}`));
    }
  };
  const interrupted = () => {
    progress('hooks bench: interrupted, cleaning up');
    void cleanUp().finally(() => process.exit(130));
  };
  process.once('SIGINT', interrupted);
  process.once('SIGTERM', interrupted);
  // The farm's processes outlive a crashed bench: stop them first. A closed terminal is no reason
  // to crash, the report also goes to a file.
  process.once('uncaughtException', (error) => {
    progress(`hooks bench: failed: ${error.stack ?? error.message}`);
    void cleanUp().finally(() => process.exit(1));
  });
  process.stdout.on('error', () => undefined);
  process.stderr.on('error', () => undefined);

  try {
    progress('hooks bench: starting registry, database, farm (no agents)');
    const registry = await startRegistry();
    cleanups.push(() => registry.stop());
    const database = await createTestDatabase();
    cleanups.push(() => database.drop());
    const repo = await createGitRepo({ Dockerfile: 'FROM scratch\nCOPY hello.txt /hello.txt\n', 'hello.txt': 'hi\n' });
    cleanups.push(() => repo.remove());
    // Quiet logs: a line per request on stdout would be measured too, and is not what a
    // production api logs either.
    const farm = await startFarm({ databaseUrl: database.url, agents: [], env: { LOG_LEVEL: 'warn' } });
    // Every delivery leaves a queued flow in Redis; once the farm is stopped, its keys go too.
    cleanups.push(() => deleteQueueKeys(farm.queuePrefix));
    cleanups.push(() => farm.stop());

    const secret = randomBytes(24).toString('hex');
    const created = await farm.request('POST', '/v1/projects', {
      name: 'bench-hooks',
      repo: repo.url,
      image: `${registry.host}/bench/app`,
      platforms: ['linux/amd64', 'linux/arm64'],
      tags: ['sha-{sha7}', '{branch}'],
      webhookSecret: secret,
    });
    if (created.status !== 201) throw new Error(`POST /v1/projects: ${created.status} ${JSON.stringify(created.body)}`);
    const projectId: string = created.body.id;
    const hookUrl = `${farm.apiUrl}/v1/projects/${projectId}/hooks/github`;
    const fixture = await readFile(join(repositoryRoot(), FIXTURE), 'utf8');
    const fixtureCommit = (JSON.parse(fixture) as { after: string }).after;
    /**
     * The fixture's bytes as GitHub sends them for a push of another commit: every new delivery
     * is a new push (the same ref at the same commit would join the build already queued). The
     * commits exist nowhere, which the hook cannot tell: it never touches git.
     */
    const pushOf = (commit: string) => Buffer.from(fixture.replaceAll(fixtureCommit, commit));
    /** The body sent under each delivery id, for its replays. */
    const bodies = new Map<string, Buffer>();

    const send = (url: string, init: RequestInit = {}) => {
      const signal = AbortSignal.timeout(REQUEST_TIMEOUT_MS);
      return fetch(url, { ...init, signal }).catch((error: unknown) => {
        throw signal.aborted
          ? new Error(`${init.method ?? 'GET'} ${url}: no answer within ${REQUEST_TIMEOUT_MS} ms`)
          : error;
      });
    };
    /** Build id by delivery id, and every build id answered so far. */
    const buildIds = new Map<string, string>();
    const answeredBuilds = new Set<string>();
    const deliver = async (deliveryId: string, body: Buffer): Promise<Answer> => {
      // Signing is the forge's work, not the hook's: done before the clock starts.
      const headers = forgeHeaders('github', 'push', body, secret, deliveryId);
      const started = performance.now();
      const response = await send(hookUrl, { method: 'POST', headers, body });
      const text = await response.text();
      const ms = performance.now() - started;
      const parsed = text ? (JSON.parse(text) as { buildId?: string }) : {};
      return {
        ms,
        status: response.status,
        replayed: response.headers.get('x-farm-delivery-replayed') === 'true',
        buildId: parsed.buildId,
      };
    };
    /** A new delivery: must become a new build, answered 202. */
    const fresh = async (): Promise<number> => {
      const deliveryId = randomUUID();
      const body = pushOf(randomBytes(20).toString('hex'));
      bodies.set(deliveryId, body);
      const answer = await deliver(deliveryId, body);
      if (answer.status !== 202 || answer.replayed || !answer.buildId) {
        throw new Error(`delivery ${deliveryId}: expected 202 and a new build, got ${JSON.stringify(answer)}`);
      }
      if (answeredBuilds.has(answer.buildId)) throw new Error(`build ${answer.buildId} answered twice`);
      answeredBuilds.add(answer.buildId);
      buildIds.set(deliveryId, answer.buildId);
      return answer.ms;
    };
    const get = async (path: string): Promise<number> => {
      const started = performance.now();
      const response = await send(`${farm.apiUrl}${path}`);
      await response.arrayBuffer();
      const ms = performance.now() - started;
      if (response.status !== 200) throw new Error(`GET ${path}: ${response.status}`);
      return ms;
    };

    progress(`hooks bench: ${WARMUP} warm-up deliveries`);
    const warmup = await sequentially(WARMUP, BUDGETS_MS.warmup, fresh);
    const warmupIds = new Set(buildIds.keys());

    // After the warm-up, so both paths through the api are equally warm.
    progress('hooks bench: baselines (GET /healthz, GET /readyz)');
    const healthz = await sequentially(BASELINE_REQUESTS, BUDGETS_MS.baseline, () => get('/healthz'));
    const readyz = await sequentially(BASELINE_REQUESTS, BUDGETS_MS.baseline, () => get('/readyz'));

    progress(`hooks bench: ${deliveries} sequential deliveries`);
    const sequential = await sequentially(deliveries, BUDGETS_MS.sequential, fresh);
    const sequentialIds = [...buildIds.keys()].filter((id) => !warmupIds.has(id));

    progress(`hooks bench: ${deliveries} deliveries, ${concurrency} in flight`);
    const concurrent = await inParallel(deliveries, concurrency, BUDGETS_MS.concurrent, fresh);

    // Replays of deliveries spread over the sequential run, each of a different one, as a forge
    // redelivers after a timeout: the same answer, the same build, no new build.
    progress(`hooks bench: ${replays} replays`);
    const step = sequentialIds.length / replays;
    const replay = await sequentially(Math.min(replays, sequentialIds.length), BUDGETS_MS.replay, async (i) => {
      const deliveryId = sequentialIds[Math.floor(i * step)];
      const answer = await deliver(deliveryId, bodies.get(deliveryId) ?? Buffer.alloc(0));
      if (answer.status !== 202 || !answer.replayed || answer.buildId !== buildIds.get(deliveryId)) {
        throw new Error(
          `replay of ${deliveryId}: expected 202, replayed, build ${buildIds.get(deliveryId)}; got ${JSON.stringify(answer)}`,
        );
      }
      return answer.ms;
    });

    const stored = await countStored(database.url, projectId);
    const expected = warmup.latencies.length + sequential.latencies.length + concurrent.latencies.length;
    if (stored.builds !== expected || stored.deliveries !== expected) {
      throw new Error(`expected ${expected} builds and deliveries stored, found ${JSON.stringify(stored)}`);
    }

    const results: HookResults = {
      command,
      startedAt,
      machine,
      revision,
      load: { start: startLoad, end: loadavg()[0] },
      concurrency,
      warmup,
      healthz,
      readyz,
      sequential,
      concurrent,
      replay,
      stored,
    };
    const report = renderReport(results);
    const resultsDir = join(repositoryRoot(), 'bench', 'results');
    await mkdir(resultsDir, { recursive: true });
    await writeFile(join(resultsDir, 'hooks.md'), report);
    process.stdout.write(`${report}\n`);
    progress(`hooks bench: ${verdictLine(results)}; report written to bench/results/hooks.md`);
  } finally {
    await cleanUp();
  }
}

/** Runs `request` `count` times, one after the other, starting none after `budgetMs`. */
async function sequentially(count: number, budgetMs: number, request: (i: number) => Promise<number>): Promise<Phase> {
  const latencies: number[] = [];
  const started = performance.now();
  for (let i = 0; i < count && performance.now() - started < budgetMs; i++) latencies.push(await request(i));
  return { latencies, wallMs: performance.now() - started, planned: count, budgetMs };
}

/** Runs `request` `count` times with `inFlight` outstanding at every moment, starting none after `budgetMs`. */
async function inParallel(
  count: number,
  inFlight: number,
  budgetMs: number,
  request: () => Promise<number>,
): Promise<Phase> {
  const latencies: number[] = [];
  const started = performance.now();
  let sent = 0;
  const worker = async () => {
    while (sent < count && performance.now() - started < budgetMs) {
      sent++;
      latencies.push(await request());
    }
  };
  await Promise.all(Array.from({ length: Math.min(inFlight, count) }, worker));
  return { latencies, wallMs: performance.now() - started, planned: count, budgetMs };
}

/** Deletes every Redis key under the farm's queue prefix (SCAN, so Redis is never blocked). */
async function deleteQueueKeys(queuePrefix: string): Promise<void> {
  const redis = createRedisConnection(REDIS_URL);
  try {
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${queuePrefix}:*`, 'COUNT', 1000);
      if (keys.length) await redis.unlink(...keys);
      cursor = next;
    } while (cursor !== '0');
  } finally {
    await redis.quit();
  }
}

async function describeRevision(): Promise<string> {
  const git = (...args: string[]) => run('git', args, { cwd: repositoryRoot() }).then(({ stdout }) => stdout.trim());
  try {
    const [head, changes] = await Promise.all([
      git('rev-parse', '--short', 'HEAD'),
      git('status', '--porcelain', '--', 'apps', 'libs'),
    ]);
    return changes ? `${head} with uncommitted changes in apps/ or libs/` : head;
  } catch {
    return 'unknown (not a git checkout)';
  }
}

async function countStored(url: string, projectId: string): Promise<HookResults['stored']> {
  const client = new Client({ connectionString: url });
  await client.connect();
  try {
    const { rows } = await client.query<{ builds: number; deliveries: number }>(
      `SELECT (SELECT count(*)::int FROM "Build" WHERE "projectId" = $1) AS builds,
              (SELECT count(*)::int FROM "Delivery" WHERE "projectId" = $1) AS deliveries`,
      [projectId],
    );
    return rows[0];
  } finally {
    await client.end();
  }
}

const row = (cells: (string | number)[]) => `| ${cells.join(' | ')} |`;
const fixed = (value: number) => value.toFixed(1);

/** `1000`, or `612 of 1000 (45 s budget)` when the phase ran out of time. */
function count(phase: Phase): string {
  const n = phase.latencies.length;
  return n < phase.planned ? `${n} of ${phase.planned} (${phase.budgetMs / 1000} s budget)` : String(n);
}

function latencyRow(name: string, phase: Phase): string {
  if (phase.latencies.length === 0) return row([name, count(phase), '-', '-', '-', '-']);
  const at = (p: number) => fixed(percentile(phase.latencies, p));
  return row([name, count(phase), at(50), at(90), at(99), fixed(Math.max(...phase.latencies))]);
}

function perSecond(phase: Phase): string {
  return ((phase.latencies.length / phase.wallMs) * 1000).toFixed(0);
}

/** The sequential run's p99 against the target: PASS, MISS, or INCONCLUSIVE with too few samples. */
function verdict(results: HookResults): { text: string; p99?: number } {
  const { latencies } = results.sequential;
  if (latencies.length < MIN_FOR_P99) {
    return { text: `INCONCLUSIVE (only ${latencies.length} sequential deliveries fit in the time budget)` };
  }
  const p99 = percentile(latencies, 99);
  return { text: p99 < TARGET_P99_MS ? 'PASS' : 'MISS', p99 };
}

function renderReport(results: HookResults): string {
  const { machine, sequential, concurrent, warmup } = results;
  const { text, p99 } = verdict(results);
  const cut = [warmup, results.healthz, results.readyz, sequential, concurrent, results.replay].some(
    (phase) => phase.latencies.length < phase.planned,
  );
  return [
    '# Push webhook: time to answer',
    '',
    `- command: \`${results.command}\``,
    `- date: ${results.startedAt.toISOString()}`,
    `- machine: ${machine.cpus} CPUs (${machine.cpuModel}), ${machine.memoryGiB} GiB memory, kernel ${machine.kernel}, node ${machine.node}`,
    `- code: ${results.revision} (the compiled dist/ of the checkout)`,
    `- load average (1 min): ${results.load.start.toFixed(2)} at the start, ${results.load.end.toFixed(2)} at the end`,
    '- farm: api + coordinator as separate processes (LOG_LEVEL=warn), PostgreSQL and Redis on loopback, no',
    '  agents: every build stays queued (the coordinator marks its platforms unschedulable), which does not',
    "  change the hook's answer",
    `- delivery: \`POST /v1/projects/{id}/hooks/github\`, \`X-GitHub-Event: push\`, the real \`${FIXTURE}\``,
    '  (branch master) with its pushed commit replaced by a new random SHA for every new delivery, signed',
    '  with `X-Hub-Signature-256`, a new `X-GitHub-Delivery` each time; project with two platforms',
    '  (linux/amd64, linux/arm64) and tags `sha-{sha7}`, `{branch}`. Latency = fetch sent -> whole answer read',
    '  (`performance.now()`, keep-alive connections, signing done before the clock starts)',
    `- order: ${count(warmup)} warm-up deliveries (not counted), the baselines, the sequential run, the run`,
    `  with ${results.concurrency} in flight, then the replays`,
    '',
    '## Result',
    '',
    row(['latency (ms)', 'requests', 'p50', 'p90', 'p99', 'max']),
    row(['---', '---:', '---:', '---:', '---:', '---:']),
    latencyRow('**new delivery, sequential**', sequential),
    latencyRow(`new delivery, ${results.concurrency} in flight`, concurrent),
    latencyRow('replay (a delivery id already answered)', results.replay),
    latencyRow('baseline: `GET /healthz` (no I/O)', results.healthz),
    latencyRow('baseline: `GET /readyz` (one PostgreSQL + one Redis ping)', results.readyz),
    '',
    `**sequential p99: ${p99 === undefined ? '-' : `${fixed(p99)} ms`}** (target < ${TARGET_P99_MS} ms): **${text}**`,
    '',
    ...(cut ? ['- some phases ran out of their time budget (the machine was busy): see the requests column'] : []),
    `- throughput: ${perSecond(sequential)} deliveries/s sequentially, ` +
      `${perSecond(concurrent)} deliveries/s with ${results.concurrency} in flight ` +
      `(${concurrent.latencies.length} in ${(concurrent.wallMs / 1000).toFixed(1)} s)`,
    `- checked: every new delivery answered 202 with a build id never seen before; every replay answered 202`,
    `  with \`X-Farm-Delivery-Replayed: true\` and the original build id; PostgreSQL holds exactly`,
    `  ${results.stored.builds} builds and ${results.stored.deliveries} deliveries for the project ` +
      `(warm-up + sequential + concurrent; none for a replay)`,
    '',
  ].join('\n');
}

function verdictLine(results: HookResults): string {
  const { text, p99 } = verdict(results);
  return `sequential hook p99 = ${p99 === undefined ? '-' : `${fixed(p99)} ms`} (target < ${TARGET_P99_MS} ms): ${text}`;
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    progress(`hooks bench: failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
    process.exit(1);
  },
);
