/**
 * `npm run bench`, API part: how many build submissions the api accepts per second under load,
 * and whether its latency and memory stay flat while builds pile up in the queue. A farm with
 * no agent (api + coordinator as separate processes): every build stays queued, which is the
 * point. autocannon fills the queue (0 -> N/2 -> N builds, several connections, a new commit
 * per request) and reports accepted submissions/s with latency p50/p99; at 0, N/2 and N a
 * sequential probe measures `POST /v1/builds`, `GET /v1/builds` and `GET /v1/builds/{id}`,
 * and /proc gives the api's and coordinator's RSS. Writes bench/results/load.md and load.json.
 *
 *   node dist/bench/load.js [--queued N] [--connections N] [--probes N]
 */
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { loadavg } from 'node:os';
import { join, relative } from 'node:path';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';
import { repositoryRoot } from '../scripts/lib/repository-root';
import { createTestDatabase } from '../test/helpers/database';
import { startFarm } from '../test/helpers/farm';
import { createGitRepo } from '../test/helpers/git-repo';
import { positive } from './lib/args';
import { describeMachine } from './lib/machine';
import type { Figure } from './lib/report';
import { rssMiB } from './lib/rss';
import { percentile } from './lib/stats';

const TARGET_ACCEPTED_PER_S = 300;
const TARGET_P99_MS = 100;
const PLATFORMS = ['linux/amd64', 'linux/arm64'];

const progress = (line: string) => process.stderr.write(`${line}\n`);

interface Fill {
  from: number;
  to: number;
  accepted: number;
  refused: number;
  seconds: number;
  p50: number;
  p99: number;
}

interface Probe {
  queued: number;
  post: number[];
  list: number[];
  get: number[];
  apiRss: number;
  coordinatorRss: number;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      queued: { type: 'string', default: '10000' },
      connections: { type: 'string', default: '10' },
      probes: { type: 'string', default: '200' },
    },
  });
  const queued = positive(values.queued, '--queued');
  const connections = positive(values.connections, '--connections');
  const probes = positive(values.probes, '--probes');
  const startedAt = new Date();
  const startLoad = loadavg()[0];
  const invocation = ['node', relative(repositoryRoot(), process.argv[1]), ...process.argv.slice(2)].join(' ');
  const command = process.env.npm_lifecycle_event
    ? `npm run ${process.env.npm_lifecycle_event} (${invocation})`
    : invocation;
  const machine = await describeMachine();
  progress(`load bench: ${command}`);

  const cleanups: (() => Promise<unknown>)[] = [];
  const cleanUp = async () => {
    for (const cleanup of cleanups.splice(0).reverse()) {
      await cleanup().catch((error: Error) => progress(`load bench: cleanup failed: ${error.message}`));
    }
  };
  const interrupted = () => void cleanUp().finally(() => process.exit(130));
  process.once('SIGINT', interrupted);
  process.once('SIGTERM', interrupted);

  try {
    const database = await createTestDatabase();
    cleanups.push(() => database.drop());
    const repo = await createGitRepo({ Dockerfile: 'FROM scratch\nCOPY hello.txt /hello.txt\n', 'hello.txt': 'hi\n' });
    cleanups.push(() => repo.remove());
    // No agents; quiet logs (a line per request is not what a production api logs); no rate
    // limit in the way of the load it is meant to take.
    const farm = await startFarm({
      databaseUrl: database.url,
      agents: [],
      env: { LOG_LEVEL: 'warn', FARM_RATE_LIMIT_PER_MINUTE: '10000000' },
    });
    cleanups.push(() => farm.stop());
    const apiPid = findApiPid(farm.queuePrefix);
    const coordinatorPid = farm.coordinators[0]?.pid;
    const body = () =>
      JSON.stringify({
        repo: repo.url,
        commit: randomBytes(20).toString('hex'),
        platforms: PLATFORMS,
        tags: ['127.0.0.1:5000/bench/load:latest'],
      });

    let count = 0;
    const probe = async (): Promise<Probe> => {
      progress(`load bench: probing at ${count} queued builds`);
      const timed = async (method: string, path: string, payload?: string, expect = 200) => {
        const started = performance.now();
        const response = await fetch(`${farm.apiUrl}${path}`, {
          method,
          headers: { authorization: `Bearer ${farm.adminToken}`, 'content-type': 'application/json' },
          body: payload,
        });
        const text = await response.text();
        const ms = performance.now() - started;
        if (response.status !== expect) throw new Error(`${method} ${path}: ${response.status} ${text.slice(0, 500)}`);
        return { ms, text };
      };
      const result: Probe = { queued: count, post: [], list: [], get: [], apiRss: 0, coordinatorRss: 0 };
      let lastId = '';
      for (let i = 0; i < probes; i++) {
        const posted = await timed('POST', '/v1/builds', body(), 202);
        result.post.push(posted.ms);
        lastId = (JSON.parse(posted.text) as { id: string }).id;
        result.list.push((await timed('GET', '/v1/builds?limit=20')).ms);
        result.get.push((await timed('GET', `/v1/builds/${lastId}`)).ms);
      }
      count += probes;
      result.apiRss = rssMiB(apiPid);
      result.coordinatorRss = rssMiB(coordinatorPid);
      return result;
    };
    const fill = async (to: number): Promise<Fill> => {
      const from = count;
      progress(`load bench: submitting ${to - from} builds, ${connections} connections`);
      // Timed here: autocannon's own duration is in whole seconds.
      const started = performance.now();
      const result = await autocannon({
        url: farm.apiUrl,
        connections,
        amount: to - from,
        timeout: 30,
        headers: { authorization: `Bearer ${farm.adminToken}`, 'content-type': 'application/json' },
        requests: [{ method: 'POST', path: '/v1/builds', setupRequest: (request) => ({ ...request, body: body() }) }],
      });
      const accepted = result.statusCodeStats['202']?.count ?? 0;
      count += accepted;
      return {
        from,
        to: count,
        accepted,
        refused: result.non2xx + result.errors + result.timeouts,
        seconds: (performance.now() - started) / 1000,
        p50: result.latency.p50,
        p99: result.latency.p99,
      };
    };

    const probeResults = [await probe()];
    const fills = [await fill(Math.floor(queued / 2))];
    probeResults.push(await probe());
    fills.push(await fill(queued));
    probeResults.push(await probe());
    const stored = await farm.request('GET', '/v1/builds?limit=1');
    if (stored.status !== 200) throw new Error(`GET /v1/builds: ${stored.status}`);

    const results = { command, startedAt, machine, load: { start: startLoad, end: loadavg()[0] }, fills, probeResults };
    const report = render(results, connections);
    const dir = join(repositoryRoot(), 'bench', 'results');
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, 'load.md'), report);
    await writeFile(join(dir, 'load.json'), JSON.stringify({ figures: loadFigures(fills, probeResults) }, null, 2));
    process.stdout.write(`${report}\n`);
    progress('load bench: report written to bench/results/load.md');
  } finally {
    await cleanUp();
  }
}

/** The api process of this farm: its entry point, with this farm's queue prefix in its environment. */
function findApiPid(queuePrefix: string): number | undefined {
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8');
      if (!cmdline.includes('apps/api/src/main.js')) continue;
      const environ = readFileSync(`/proc/${entry}/environ`, 'utf8').split('\0');
      if (environ.includes(`FARM_QUEUE_PREFIX=${queuePrefix}`)) return Number(entry);
    } catch {
      // gone, or not ours to read
    }
  }
  return undefined;
}

function loadFigures(fills: Fill[], probes: Probe[]): Figure[] {
  const first = fills[0];
  const rate = first.accepted / first.seconds;
  const [empty, , full] = probes;
  const p99 = (values: number[]) => percentile(values, 99);
  return [
    {
      name: `6. accepted build submissions/s (autocannon, ${first.from} -> ${first.to} queued)`,
      value: `${rate.toFixed(0)}/s`,
      target: `>= ${TARGET_ACCEPTED_PER_S}/s`,
      pass: rate >= TARGET_ACCEPTED_PER_S,
    },
    {
      name: '6. submission latency under that load, p99',
      value: `${first.p99.toFixed(0)} ms (p50 ${first.p50.toFixed(0)} ms)`,
      target: `< ${TARGET_P99_MS} ms`,
      pass: first.p99 < TARGET_P99_MS,
    },
    {
      name: `8. POST /v1/builds p99, ${empty.queued} -> ${full.queued} queued (sequential probe)`,
      value: `${p99(empty.post).toFixed(0)} -> ${p99(full.post).toFixed(0)} ms`,
      target: 'flat (< 2x)',
      pass: p99(full.post) < 2 * Math.max(p99(empty.post), 5),
    },
    {
      name: `8. api RSS, ${empty.queued} -> ${full.queued} queued`,
      value: `${empty.apiRss.toFixed(0)} -> ${full.apiRss.toFixed(0)} MiB (coordinator ${empty.coordinatorRss.toFixed(0)} -> ${full.coordinatorRss.toFixed(0)} MiB)`,
      target: 'flat (< 1.5x)',
      pass: full.apiRss < 1.5 * empty.apiRss,
    },
  ];
}

const row = (cells: (string | number)[]) => `| ${cells.join(' | ')} |`;

function render(
  results: {
    command: string;
    startedAt: Date;
    machine: Awaited<ReturnType<typeof describeMachine>>;
    load: { start: number; end: number };
    fills: Fill[];
    probeResults: Probe[];
  },
  connections: number,
): string {
  const { machine, fills, probeResults } = results;
  const at = (values: number[], p: number) => percentile(values, p).toFixed(1);
  return [
    '# API under load and with a deep queue',
    '',
    `- command: \`${results.command}\``,
    `- date: ${results.startedAt.toISOString()}`,
    `- machine: ${machine.cpus} CPUs (${machine.cpuModel}), ${machine.memoryGiB} GiB memory, kernel ${machine.kernel}, node ${machine.node}`,
    `- load average (1 min): ${results.load.start.toFixed(2)} at the start, ${results.load.end.toFixed(2)} at the end`,
    '- farm: api + coordinator as separate processes (LOG_LEVEL=warn, no rate limit), PostgreSQL and Redis on',
    `  loopback, no agent: every build (${PLATFORMS.join(' + ')}, a new commit each) stays queued`,
    '',
    '## Figures',
    '',
    row(['figure', 'measured', 'target', 'verdict']),
    row(['---', '---:', '---:', '---:']),
    ...loadFigures(fills, probeResults).map((f) => row([f.name, f.value, f.target, f.pass ? 'PASS' : '**MISS**'])),
    '',
    `## Submissions under load (autocannon, ${connections} connections, \`POST /v1/builds\`)`,
    '',
    row(['queued before -> after', 'accepted (202)', 'refused or failed', 'seconds', 'accepted/s', 'p50 ms', 'p99 ms']),
    row(['---', '---:', '---:', '---:', '---:', '---:', '---:']),
    ...fills.map((f) =>
      row([
        `${f.from} -> ${f.to}`,
        f.accepted,
        f.refused,
        f.seconds.toFixed(1),
        (f.accepted / f.seconds).toFixed(0),
        f.p50.toFixed(0),
        f.p99.toFixed(0),
      ]),
    ),
    '',
    '## Latency and memory as the queue grows (sequential probe)',
    '',
    row([
      'queued',
      'POST p50',
      'POST p99',
      'GET list p50',
      'GET list p99',
      'GET one p50',
      'GET one p99',
      'api RSS MiB',
      'coordinator RSS MiB',
    ]),
    row(['---:', '---:', '---:', '---:', '---:', '---:', '---:', '---:', '---:']),
    ...probeResults.map((p) =>
      row([
        p.queued,
        at(p.post, 50),
        at(p.post, 99),
        at(p.list, 50),
        at(p.list, 99),
        at(p.get, 50),
        at(p.get, 99),
        p.apiRss.toFixed(0),
        p.coordinatorRss.toFixed(0),
      ]),
    ),
    '',
  ].join('\n');
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    progress(`load bench: failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
    process.exit(1);
  },
);
