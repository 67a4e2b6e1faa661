import { pushBusyboxBase } from '../helpers/base-images';
import { createTestDatabase, type TestDatabase } from '../helpers/database';
import { startFarm, waitFor, type TestFarm } from '../helpers/farm';
import { collectFaultReport, expectNothingLost, printFaultReport } from '../helpers/fault-report';
import { createGitRepo, type TestGitRepo } from '../helpers/git-repo';
import { startRegistry, type TestRegistry } from '../helpers/registry';
import { startRegistryProxy, type RegistryProxy } from '../helpers/registry-proxy';
import { startTcpProxy, type TcpProxy } from '../helpers/tcp-proxy';

/**
 * PostgreSQL unreachable for 10 s while builds are in flight (issue 5). The control plane
 * reaches PostgreSQL through a TCP proxy the test cuts: live connections drop and new ones are
 * refused, as when the server goes down. Writes must answer 503 with the error body and
 * Retry-After (not 500), /readyz must turn false, agents (which never touch PostgreSQL) keep
 * building, and once the database is back every build ends with its real state recorded.
 */

jest.setTimeout(300_000);

const OUTAGE_MS = 10_000;
const BUILDS = 3;

let registry: TestRegistry;
let tagProxy: RegistryProxy;
let database: TestDatabase;
let postgres: TcpProxy;
let farm: TestFarm;
let repo: TestGitRepo;

beforeAll(async () => {
  [registry, database, postgres] = await Promise.all([
    startRegistry(),
    createTestDatabase(),
    startTcpProxy({ host: '127.0.0.1', port: 5432 }),
  ]);
  tagProxy = await startRegistryProxy(registry.url);
  const base = await pushBusyboxBase(registry.host);
  repo = await createGitRepo({
    // Long enough that builds are still running when the database goes away.
    Dockerfile: `FROM ${base}\nRUN sleep 4 && uname -m > /arch\nCOPY hello.txt /hello.txt\n`,
    'hello.txt': 'built across a database outage\n',
  });
  farm = await startFarm({
    databaseUrl: database.url.replace('127.0.0.1:5432', `127.0.0.1:${postgres.port}`),
    agents: [{ name: 'amd64' }, { platform: 'linux/arm64', emulated: true, name: 'arm64' }],
  });
});

afterAll(async () => {
  await farm?.stop();
  await Promise.all([tagProxy?.stop(), postgres?.stop()]);
  await Promise.all([registry?.stop(), database?.drop(), repo?.remove()]);
});

const buildRequest = (tag: string) => ({
  repo: repo.url,
  ref: 'main',
  platforms: ['linux/amd64', 'linux/arm64'],
  tags: [`${tagProxy.host}/outage/app:${tag}`],
  // Each build an image of its own: none is answered from an agent's result cache.
  labels: { 'test.build': tag },
});

test('builds in flight finish across a 10 s PostgreSQL outage; writes answer 503 meanwhile', async () => {
  const startedAt = Date.now();
  const ids: string[] = [];
  for (let i = 0; i < BUILDS; i++) {
    const submitted = await farm.request('POST', '/v1/builds', buildRequest(`before-${i}`));
    expect(submitted.status).toBe(202);
    ids.push(submitted.body.id);
  }
  // Cut once the farm is busy: the first build's platforms are running on the agents.
  await farm.waitForBuild(ids[0], (build) => build.status === 'running');
  const processes = [...farm.coordinators, farm.agent('amd64'), farm.agent('arm64')];

  await postgres.cut('refuse');
  const cutAt = Date.now();
  const duringOutage: {
    write?: Response;
    writeBody?: any;
    projectWrite?: { status: number; body: any };
    ready?: number;
    read?: number;
  } = {};
  try {
    // A write: 503 with the documented body and Retry-After, never a 500.
    const write = await fetch(`${farm.apiUrl}/v1/builds`, {
      method: 'POST',
      headers: { authorization: `Bearer ${farm.adminToken}`, 'content-type': 'application/json' },
      body: JSON.stringify(buildRequest('during')),
    });
    duringOutage.write = write;
    duringOutage.writeBody = await write.json();
    duringOutage.ready = (await fetch(`${farm.apiUrl}/readyz`)).status;
    duringOutage.read = (await farm.request('GET', `/v1/builds/${ids[0]}`)).status;
    // Other writes meet the same answer.
    duringOutage.projectWrite = await farm.request('POST', '/v1/projects', {
      name: 'during-outage',
      repo: repo.url,
      image: `${tagProxy.host}/outage/project`,
      platforms: ['linux/amd64'],
      tags: ['{branch}'],
      webhookSecret: 'a-webhook-secret-long-enough-to-be-accepted',
    });
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, OUTAGE_MS - (Date.now() - cutAt))));
  } finally {
    await postgres.restore();
  }
  const outageMs = Date.now() - cutAt;

  expect(duringOutage.write?.status).toBe(503);
  expect(Number(duringOutage.write?.headers.get('retry-after'))).toBeGreaterThan(0);
  expect(duringOutage.writeBody).toEqual({
    error: { code: 'unavailable', message: expect.stringContaining('database') },
  });
  expect(duringOutage.projectWrite).toMatchObject({ status: 503, body: { error: { code: 'unavailable' } } });
  expect(duringOutage.ready).toBe(503);
  // Reads may fail while the database is away, but as 503, not 500.
  expect([200, 503]).toContain(duringOutage.read);

  // Ready again by itself, without restarting anything.
  const backAt = Date.now();
  await waitFor(async () => (await fetch(`${farm.apiUrl}/readyz`)).status === 200, 15_000);
  const readyAfterMs = Date.now() - backAt;

  const report = await collectFaultReport({
    scenario: 'PostgreSQL unreachable for 10 s',
    farm,
    buildIds: ids,
    proxy: tagProxy,
    startedAt,
    deadlineMs: 120_000,
    figures: {
      'outage, ms': outageMs,
      'write during the outage': `${duringOutage.write?.status} (${duringOutage.writeBody?.error?.code}), Retry-After ${duringOutage.write?.headers.get('retry-after')} s`,
      '/readyz during the outage': duringOutage.ready ?? 'none',
      '/readyz 200 again after the database came back, ms': readyAfterMs,
    },
  });
  printFaultReport(report);
  expectNothingLost(report);
  expect(report.succeeded).toBe(BUILDS);

  // The state is right, not just terminal: every platform recorded with its agent and digest.
  for (const id of ids) {
    const build = report.builds.get(id);
    expect(build.digest).toMatch(/^sha256:/);
    expect(build.platforms).toEqual([
      expect.objectContaining({ platform: 'linux/amd64', status: 'succeeded', agent: 'amd64', error: null }),
      expect.objectContaining({ platform: 'linux/arm64', status: 'succeeded', agent: 'arm64', error: null }),
    ]);
    for (const platform of build.platforms) expect(platform.digest).toMatch(/^sha256:/);
  }
  // The 503 stored nothing: the farm knows exactly the builds it accepted.
  const listed = await farm.request('GET', '/v1/builds?limit=100');
  expect(listed.status).toBe(200);
  expect(listed.body.builds.map((b: any) => b.id).sort()).toEqual([...ids].sort());
  expect((await farm.request('GET', '/v1/projects')).body.projects).toEqual([]);
  // Nothing crashed: the coordinator and both agents rode the outage out.
  for (const child of processes) expect(child.exitCode).toBeNull();
  expect(farm.output()).not.toMatch(/unhandled|ERR_UNHANDLED_REJECTION/i);

  // And the farm takes new work.
  const after = await farm.request('POST', '/v1/builds', buildRequest('after'));
  expect(after.status).toBe(202);
  expect((await farm.waitForBuild(after.body.id)).status).toBe('succeeded');
});
