import { randomBytes } from 'node:crypto';
import { pushBusyboxBase } from '../helpers/base-images';
import { createTestDatabase, type TestDatabase } from '../helpers/database';
import { slowDockerfile } from '../helpers/dockerfiles';
import { collectFaultReport, expectNothingLost, printFaultReport } from '../helpers/fault-report';
import { agentsByName, startFarm, waitFor, type TestFarm } from '../helpers/farm';
import { createGitRepo, type TestGitRepo } from '../helpers/git-repo';
import { startRedisServer, type TestRedisServer } from '../helpers/redis-server';
import { startRegistryProxy, type RegistryProxy } from '../helpers/registry-proxy';
import { startRegistry, type TestRegistry } from '../helpers/registry';

/**
 * Redis restart (issue 5): the farm runs on a redis-server of this test's own (AOF, fsync on
 * every write), which is killed (SIGKILL) and started again while builds are queued and running,
 * and while more are being submitted. Every accepted build finishes, published once; workers,
 * heartbeats and the coordinator's event reader reconnect by themselves, and builds submitted
 * after the restart are built too.
 */

jest.setTimeout(300_000);

const DOWN_MS = 3_000;

let redis: TestRedisServer;
let registry: TestRegistry;
let proxy: RegistryProxy;
let database: TestDatabase;
let farm: TestFarm;
let repo: TestGitRepo;

function submit(): Promise<{ status: number; body: any }> {
  return farm.request('POST', '/v1/builds', {
    repo: repo.url,
    commit: repo.commit,
    // Every build runs its steps: a result cached from an earlier build would end before the fault.
    noCache: true,
    platforms: ['linux/amd64'],
    tags: [`${proxy.host}/faults/redis-restart:${randomBytes(4).toString('hex')}`],
  });
}

beforeAll(async () => {
  [redis, registry, database] = await Promise.all([startRedisServer(), startRegistry(), createTestDatabase()]);
  proxy = await startRegistryProxy(registry.url);
  const base = await pushBusyboxBase(registry.host);
  repo = await createGitRepo({ Dockerfile: slowDockerfile(base, 3) });
  farm = await startFarm({
    databaseUrl: database.url,
    redisUrl: redis.url,
    agents: [{ name: 'host-a' }, { name: 'host-b' }],
  });
});

afterAll(async () => {
  await farm?.stop();
  await proxy?.stop();
  await Promise.all([redis?.stop(), registry?.stop(), database?.drop(), repo?.remove()]);
});

test('Redis killed and restarted with builds queued and running: every accepted build finishes', async () => {
  const startedAt = Date.now();
  const accepted: string[] = [];
  const accept = (response: { status: number; body: any }) => {
    expect([202, 503]).toContain(response.status);
    if (response.status === 202) accepted.push(response.body.id);
    return response.status;
  };
  for (let i = 0; i < 6; i++) accept(await submit());
  // Two build, four wait in the queue.
  await waitFor(
    async () => (await farm.request('GET', '/v1/builds?status=running')).body.builds?.length === 2,
    60_000,
    () => farm.output().slice(-4000),
  );
  const runningAtRestart = 2;

  // Submissions while Redis is down: either accepted once it is back (202) or refused (503).
  const restarting = redis.restart({ downMs: DOWN_MS });
  await new Promise((resolve) => setTimeout(resolve, 500));
  const during = await Promise.all([submit(), submit()]);
  const { downMs } = await restarting;
  const backAt = Date.now();
  const refusedDuring = during.map(accept).filter((status) => status === 503).length;

  // Workers and heartbeats come back by themselves: both agents online again, taking new jobs.
  await waitFor(
    async () => {
      const agents = await agentsByName(farm);
      return ['host-a', 'host-b'].every((name) => agents[name]?.status === 'online');
    },
    30_000,
    () => farm.output().slice(-4000),
  );
  for (let i = 0; i < 2; i++) expect(accept(await submit())).toBe(202);

  const report = await collectFaultReport({
    scenario: 'Redis SIGKILL and restart',
    farm,
    buildIds: accepted,
    proxy,
    startedAt,
    figures: {
      'Redis down (kill -> answering again), ms': downMs,
      'builds running / queued at the kill': `${runningAtRestart} / ${6 - runningAtRestart}`,
      'submitted during the outage: accepted / refused 503': `${during.length - refusedDuring} / ${refusedDuring}`,
    },
  });
  report.figures['Redis back -> every build ended, ms'] = startedAt + report.durationMs - backAt;
  printFaultReport(report);
  expectNothingLost(report);
  expect(report.succeeded).toBe(accepted.length);
  expect(accepted.length).toBeGreaterThanOrEqual(8);
  // A refused submission left nothing behind.
  expect((await farm.request('GET', '/v1/builds?limit=100')).body.builds).toHaveLength(accepted.length);
});
