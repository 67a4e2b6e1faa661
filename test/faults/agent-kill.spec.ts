import { randomBytes } from 'node:crypto';
import { killAgent, killAgentHolding, waitRestarted } from '../helpers/agent-faults';
import { pushBusyboxBase } from '../helpers/base-images';
import { createTestDatabase, type TestDatabase } from '../helpers/database';
import { archDockerfile, slowDockerfile } from '../helpers/dockerfiles';
import { collectFaultReport, expectNothingLost, printFaultReport } from '../helpers/fault-report';
import { startFarm, type TestFarm } from '../helpers/farm';
import { createGitRepo, type TestGitRepo } from '../helpers/git-repo';
import { pidOfClient, startRegistryProxy, type RegistryProxy } from '../helpers/registry-proxy';
import { startRegistry, type TestRegistry } from '../helpers/registry';

/**
 * Agent SIGKILL mid-build and mid-push (issue 5): two agents serve linux/amd64; the one holding
 * the job is killed like a host that dies. BullMQ's lock lapses (lockDuration 8 s), the next
 * stalled check (every 4 s) puts the job back, the other agent rebuilds it, and it is published
 * once. A second death on the same job (maxStalledCount 2) is survived too.
 */

jest.setTimeout(300_000);

// BullMQ's defaults (lock 30 s, stalled check every 30 s) take up to a minute; ours about 12 s.
// The bound is loose because this 2-core box is shared; the figure is printed either way.
const RECOVERY_BOUND_MS = 40_000;
const AGENTS = ['host-a', 'host-b'];

let registry: TestRegistry;
let proxy: RegistryProxy;
let database: TestDatabase;
let farm: TestFarm;
let repo: TestGitRepo;

async function submit(dockerfile: string): Promise<string> {
  const response = await farm.request('POST', '/v1/builds', {
    repo: repo.url,
    commit: repo.commit,
    // Every build runs its steps: a result cached from an earlier build would end before the fault.
    noCache: true,
    dockerfile,
    platforms: ['linux/amd64'],
    tags: [`${proxy.host}/faults/agent-kill:${randomBytes(4).toString('hex')}`],
  });
  expect(response.status).toBe(202);
  return response.body.id;
}

/** Brings a killed agent back, as an operator (or systemd) would. */
async function restart(name: string): Promise<void> {
  await farm.startAgent({ name });
}

beforeAll(async () => {
  [registry, database] = await Promise.all([startRegistry(), createTestDatabase()]);
  proxy = await startRegistryProxy(registry.url);
  const base = await pushBusyboxBase(registry.host);
  repo = await createGitRepo({
    Dockerfile: archDockerfile(base),
    'hello.txt': 'hello\n',
    'Dockerfile.slow': slowDockerfile(base, 6),
  });
  farm = await startFarm({ databaseUrl: database.url, agents: AGENTS.map((name) => ({ name })) });
});

afterAll(async () => {
  await farm?.stop();
  await proxy?.stop();
  await Promise.all([registry?.stop(), database?.drop(), repo?.remove()]);
});

test('agent SIGKILL mid-build: the other agent rebuilds it, published once', async () => {
  const startedAt = Date.now();
  const id = await submit('Dockerfile.slow');
  const kill = await waitRestarted(farm, await killAgentHolding(farm, id));
  await restart(kill.victim);

  const report = await collectFaultReport({
    scenario: 'agent SIGKILL mid-build',
    farm,
    buildIds: [id],
    proxy,
    startedAt,
    figures: { 'kill -> restarted on another agent, ms': kill.restartedAfterMs ?? 'never' },
  });
  printFaultReport(report);
  expectNothingLost(report);
  expect(report.succeeded).toBe(1);
  expect(kill.restartedOn).toBeDefined();
  expect(kill.restartedOn).not.toBe(kill.victim);
  expect(kill.restartedAfterMs).toBeLessThan(RECOVERY_BOUND_MS);
  expect(report.builds.get(id).platforms[0].attempts).toBe(2);
});

test('agent SIGKILL mid-push: the other agent rebuilds and pushes it, published once', async () => {
  const startedAt = Date.now();
  // Blob uploads crawl (2 s per request), so a push is caught while it is under way.
  proxy.setDelay(({ path }) => (path.includes('/blobs/uploads/') ? 2_000 : 0));
  try {
    const pushing = proxy.nextRequest(({ method, path }) => method === 'POST' && path.includes('/blobs/uploads/'));
    const id = await submit('Dockerfile');
    // The pushing agent is the process that sent the upload: the build's recorded status may lag
    // behind a loaded coordinator, and would miss a push that ends before it shows `running`.
    const pid = await pidOfClient(await pushing);
    const victim = AGENTS.find((name) => farm.agent(name).pid === pid);
    if (!victim) throw new Error(`the upload came from pid ${pid}, which is no agent of this farm`);
    const killed = await killAgent(farm, { victim, buildId: id, platform: 'linux/amd64', attempt: 1 });
    const kill = await waitRestarted(farm, killed);
    proxy.setDelay(undefined);
    await restart(kill.victim);

    const report = await collectFaultReport({
      scenario: 'agent SIGKILL mid-push',
      farm,
      buildIds: [id],
      proxy,
      startedAt,
      figures: { 'kill -> restarted on another agent, ms': kill.restartedAfterMs ?? 'never' },
    });
    printFaultReport(report);
    expectNothingLost(report);
    expect(report.succeeded).toBe(1);
    expect(kill.restartedOn).not.toBe(kill.victim);
    expect(kill.restartedAfterMs).toBeLessThan(RECOVERY_BOUND_MS);
    expect(report.builds.get(id).platforms[0].attempts).toBe(2);
  } finally {
    proxy.setDelay(undefined);
  }
});

test('two hosts die on the same job: the third attempt builds it', async () => {
  const startedAt = Date.now();
  const id = await submit('Dockerfile.slow');
  const first = await waitRestarted(farm, await killAgentHolding(farm, id));
  // The second host dies too while the first one is coming back, which then builds it.
  const firstBack = restart(first.victim);
  const second = await killAgentHolding(farm, id);
  await firstBack;
  await waitRestarted(farm, second);
  await restart(second.victim);

  const report = await collectFaultReport({
    scenario: 'agent SIGKILL twice on one job',
    farm,
    buildIds: [id],
    proxy,
    startedAt,
    figures: {
      'first kill -> restarted, ms': first.restartedAfterMs ?? 'never',
      'second kill -> restarted, ms': second.restartedAfterMs ?? 'never',
    },
  });
  printFaultReport(report);
  expectNothingLost(report);
  expect(report.succeeded).toBe(1);
  expect([first.victim, second.victim].sort()).toEqual(['host-a', 'host-b']);
  expect(report.builds.get(id).platforms[0].attempts).toBe(3);
});
